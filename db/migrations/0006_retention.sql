-- Retention (core/retention.py): what the daily prune looks up by time.

-- Resolved records past their retention; open ones are never pruned.
CREATE INDEX alarms_resolved ON alarms (resolved_at) WHERE state = 'resolved';
CREATE INDEX alerts_resolved ON alerts (resolved_at) WHERE state = 'resolved';

-- On plain PostgreSQL the old telemetry is deleted by time. These are the names and columns of
-- the indexes TimescaleDB makes when it turns the tables into hypertables (it then makes none
-- of its own), so a database with TimescaleDB ends up with the same indexes as before.
CREATE INDEX IF NOT EXISTS heartbeats_received_at_idx ON heartbeats (received_at DESC);
CREATE INDEX IF NOT EXISTS device_status_events_received_at_idx
    ON device_status_events (received_at DESC);
