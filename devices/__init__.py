"""The device registry: registration and changes, broker credentials, migration stages and
the migration report, bulk import, fleet figures and heartbeat history."""
