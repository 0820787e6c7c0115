-- The operators' side (issue 6): event ids in commit order, indexes for the live queue.
--
-- Event ids in commit order, so the event stream can resume from an id.
--
-- The console reconnects with `Last-Event-ID: N` and is sent the events after N. That is only
-- complete if no event with an id below N can still become visible once N is: with ids taken
-- at insert time, a transaction that wrote event 41 and commits after the one that wrote 42
-- would be missed by a client that had seen 42.
--
-- So the event is now written when its transaction commits: `record_event` runs as a deferred
-- constraint trigger (at commit, once per changed row, in the order of the changes) and first
-- takes a transaction-level advisory lock, which PostgreSQL releases only after the commit is
-- visible. Ids are therefore handed out in commit order: once event N can be read, every lower
-- id is committed or will never exist. The lock is held only from the first deferred event to
-- the end of the commit. PostgreSQL already serialises the commits of transactions that NOTIFY
-- (a database-wide lock from PreCommit_Notify to the end of the commit), and every
-- event-writing transaction notifies, so this costs no concurrency that was there before.
-- NOTIFY payloads and the `events` rows are as before (0004).

CREATE OR REPLACE FUNCTION record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
    act text := CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END;
    fields jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7264551105);  -- 'telecare events' commit order
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

DROP TRIGGER alarms_record_event ON alarms;
DROP TRIGGER alerts_record_event ON alerts;
CREATE CONSTRAINT TRIGGER alarms_record_event AFTER INSERT OR UPDATE ON alarms
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_event('alarm');
CREATE CONSTRAINT TRIGGER alerts_record_event AFTER INSERT OR UPDATE ON alerts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_event('alert');

-- The live queue lists what is not resolved yet (GET /alarms?state=open, GET /alerts?state=...
-- &top_level=true, newest first): a few rows among millions, read without a scan. The fleet
-- statistics count them the same way.
CREATE INDEX alarms_unresolved ON alarms (id) WHERE state <> 'resolved';
CREATE INDEX alerts_unresolved ON alerts (id) WHERE state <> 'resolved';
