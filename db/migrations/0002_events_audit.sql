-- Every new or changed alarm and alert becomes an event, written by a trigger in the same
-- transaction as the change (so no code path can forget it) and announced with NOTIFY.
--
-- Consumers: the event stream of the API (GET /events, resumable by event id), and the alert
-- engine (new and acknowledged alarms, for alarm_unhandled) in whichever process it runs.
--
-- Ids are assigned at insert time, commits can land out of id order: a consumer that replays
-- from the table after `id > N` must also take what NOTIFY delivers (in commit order) and
-- de-duplicate by id.

CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL CHECK (kind IN ('alarm', 'alert')),
    entity_id  bigint NOT NULL,
    action     text NOT NULL CHECK (action IN ('created', 'updated')),
    device_id  text,
    state      text NOT NULL
);
CREATE INDEX events_at ON events (at);

-- NOTIFY payload: {"id", "kind", "entity_id", "action", "device_id", "state"} as JSON text.
CREATE FUNCTION record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
    act text := CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (kind, entity_id, action, device_id, state)
    VALUES (TG_ARGV[0], NEW.id, act, NEW.device_id, NEW.state)
    RETURNING id INTO event_id;
    PERFORM pg_notify('telecare_events', json_build_object(
        'id', event_id, 'kind', TG_ARGV[0], 'entity_id', NEW.id, 'action', act,
        'device_id', NEW.device_id, 'state', NEW.state)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER alarms_record_event AFTER INSERT OR UPDATE ON alarms
    FOR EACH ROW EXECUTE FUNCTION record_event('alarm');
CREATE TRIGGER alerts_record_event AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION record_event('alert');

-- What operators did with an alarm (acknowledged, resolved, notes), like alert_history.
CREATE TABLE alarm_history (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarms (id),
    at        timestamptz NOT NULL DEFAULT now(),
    action    text NOT NULL,
    actor     text NOT NULL,
    note      text
);
CREATE INDEX alarm_history_alarm ON alarm_history (alarm_id, at);

-- Who changed what, when: one row for every write made through the API or the CLI.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    actor_role   text,
    token_id     bigint REFERENCES api_tokens (id),
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, at DESC);
