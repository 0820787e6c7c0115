-- The complete alert engine (issue 5): alert subjects, area grouping, partition leases.

-- The subject of an alert is what it is about; at most one unresolved alert per subject
-- (docs/ALERTS.md): `{type}:{device_id}` for device alerts, `alarm_unhandled:{alarm id}`,
-- `area_outage:{area}:{cause}`.
ALTER TABLE alerts
    ADD COLUMN subject text,
    ADD COLUMN group_id bigint REFERENCES alerts (id);
UPDATE alerts SET subject = type || ':' || coalesce(device_id, area, id::text);
ALTER TABLE alerts ALTER COLUMN subject SET NOT NULL;
DROP INDEX alerts_one_unresolved;
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (subject) WHERE state <> 'resolved';
-- What the engine loads at start and at a takeover; the members of an area alert.
CREATE INDEX alerts_unresolved_type ON alerts (type, device_id) WHERE state <> 'resolved';
CREATE INDEX alerts_group ON alerts (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX alerts_device ON alerts (device_id, id DESC);
-- Drops of the last flapping window are read back at start.
CREATE INDEX alerts_device_raised ON alerts (device_id, raised_at DESC);

-- Several engine processes share the fleet by partition: a stable hash of the device id.
ALTER TABLE devices ADD COLUMN engine_partition smallint
    GENERATED ALWAYS AS (get_byte(decode(md5(device_id), 'hex'), 0) % 64) STORED;
CREATE INDEX devices_engine_partition ON devices (engine_partition)
    WHERE decommissioned_at IS NULL;

-- One row per partition; its owner renews the lease, anyone may take an expired one.
CREATE TABLE engine_leases (
    partition   smallint PRIMARY KEY CHECK (partition BETWEEN 0 AND 63),
    owner       text,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    taken_at    timestamptz
);
INSERT INTO engine_leases (partition) SELECT generate_series(0, 63);

-- The engine processes alive: each takes its fair share of the partitions.
CREATE TABLE engine_members (
    owner       text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);

-- Change events also carry the alert's type and subject (or the alarm's event) and its time,
-- so the engine's area tracker and the event stream need no query per event.
CREATE OR REPLACE FUNCTION record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
    act text := CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END;
    fields jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;
    END IF;
    fields := to_jsonb(NEW);
    INSERT INTO events (kind, entity_id, action, device_id, state)
    VALUES (TG_ARGV[0], NEW.id, act, NEW.device_id, NEW.state)
    RETURNING id INTO event_id;
    PERFORM pg_notify('telecare_events', json_build_object(
        'id', event_id, 'kind', TG_ARGV[0], 'entity_id', NEW.id, 'action', act,
        'device_id', NEW.device_id, 'state', NEW.state,
        'type', coalesce(fields ->> 'type', fields ->> 'event'),
        'subject', fields ->> 'subject',
        'group_id', fields -> 'group_id',
        'at', coalesce(fields ->> 'raised_at', fields ->> 'received_at'))::text);
    RETURN NULL;
END
$$;
