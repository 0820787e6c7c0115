-- Technicians' side (issue 4): migration stage history, credential times, list indexes.

ALTER TABLE devices
    ADD COLUMN mqtt_password_set_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT devices_migration_stage_known CHECK (migration_stage IN
        ('analogue', 'scheduled', 'in_progress', 'verifying', 'complete', 'failed'));

-- Every migration stage a device entered: who moved it, when, from what, why, on what evidence.
-- The first row of a device is its registration (from_stage NULL).
CREATE TABLE migration_history (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (device_id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    from_stage  text,
    to_stage    text NOT NULL,
    note        text,
    evidence    jsonb
);
CREATE INDEX migration_history_device ON migration_history (device_id, id);

INSERT INTO migration_history (device_id, at, actor, from_stage, to_stage, note)
SELECT device_id, stage_changed_at, 'system', NULL, migration_stage, 'stage when history began'
FROM devices;

-- Device lists are ordered by device_id and filtered mostly on active devices: each common
-- filter gets an index that yields its rows already in cursor order (no sort, no full scan).
-- The district index also carries the stage, so the migration report's counts are read from
-- the index alone.
CREATE INDEX devices_active_district ON devices (postcode_district, device_id)
    INCLUDE (migration_stage) WHERE decommissioned_at IS NULL;
CREATE INDEX devices_active_stage ON devices (migration_stage, device_id)
    WHERE decommissioned_at IS NULL;
CREATE INDEX devices_active_model ON devices (model, device_id)
    WHERE decommissioned_at IS NULL;
-- firmware comes from heartbeats; an unchanged value keeps the ingest's upserts HOT.
CREATE INDEX device_state_firmware ON device_state (firmware, device_id);

CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

-- The last test alarm of a device is part of the evidence that a migration is complete.
CREATE INDEX alarms_device_event ON alarms (device_id, event, received_at DESC);
