"""Database access: the connection pool, versioned SQL migrations, LISTEN/NOTIFY, the audit
log written with each change, and retention of old telemetry and records."""
