"""The MQTT consumer: telemetry and alarms validated, refused messages quarantined, heartbeats
and statuses written in batches, alarms committed then acknowledged (through alarms/)."""
