"""Databases of their own for tests that need one: on the shared cluster (never stopped) or on
a private one, created fresh and dropped after; and a seed of old and new rows of every kind
that retention and backups deal with."""

from __future__ import annotations

import uuid

import psycopg

from telecare.db.migrations.runner import upgrade


def create_database(admin_url: str) -> str:
    """A new empty database on the cluster of `admin_url`; its URL."""
    name = f"telecare_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_database(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


# Device `ret-1` with telemetry 400 to 1 days old, alarms and alerts resolved 2999 days ago and
# recently, unresolved ones 3000 days old, an old area alert grouping a recent member, events
# and audit entries old and new.
SEED = """
INSERT INTO devices (device_id, heartbeat_interval_s, mqtt_password_hash) VALUES ('ret-1', 60, 'x');
INSERT INTO heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s, power, network)
SELECT now() - (d || ' days')::interval, 'ret-1', 'h' || d, now(), d, 60, 'mains', '4g'
FROM unnest(ARRAY[400, 200, 120, 30, 1]) AS d;
INSERT INTO device_status_events (received_at, device_id, state)
SELECT now() - (d || ' days')::interval, 'ret-1', 'online' FROM unnest(ARRAY[200, 1]) AS d;
INSERT INTO events (at, kind, entity_id, action, state)
VALUES (now() - interval '200 days', 'alarm', 1, 'created', 'open'),
       (now(), 'alarm', 1, 'created', 'open');
INSERT INTO alarms (device_id, msg_id, event, severity, device_ts, seq, received_at, state,
                    resolved_at, resolved_by)
VALUES ('ret-1', 'old-resolved', 'fall', 'critical', now(), 1, now() - interval '3000 days',
        'resolved', now() - interval '2999 days', 'op'),
       ('ret-1', 'new-resolved', 'fall', 'critical', now(), 2, now() - interval '10 days',
        'resolved', now() - interval '9 days', 'op'),
       ('ret-1', 'old-open', 'fall', 'critical', now(), 3, now() - interval '3000 days',
        'acknowledged', NULL, NULL);
INSERT INTO alarm_history (alarm_id, at, action, actor)
SELECT id, now() - interval '2999 days', 'resolved', 'op' FROM alarms WHERE msg_id = 'old-resolved';
INSERT INTO alerts (area, type, severity, state, raised_at, resolved_at, resolved_by, subject)
VALUES ('postcode:LS1', 'area_outage', 'critical', 'resolved', now() - interval '3000 days',
        now() - interval '2999 days', 'system', 'area_outage:postcode:LS1:silence');
INSERT INTO alerts (device_id, type, severity, state, raised_at, resolved_at, resolved_by,
                    subject, group_id)
SELECT 'ret-1', 'heartbeat_missed', 'high', 'resolved', now() - interval '3000 days',
       now() - interval '5 days', 'device', 'heartbeat_missed:ret-1', id
FROM alerts WHERE type = 'area_outage';
INSERT INTO alerts (device_id, type, severity, state, raised_at, subject)
VALUES ('ret-1', 'battery_low', 'medium', 'open', now() - interval '3000 days',
        'battery_low:ret-1');
INSERT INTO alert_history (alert_id, at, action, actor)
SELECT id, raised_at, 'raised', 'system' FROM alerts;
INSERT INTO audit_log (at, actor, action, target_type)
VALUES (now() - interval '3000 days', 'cli', 'token.create', 'token'),
       (now(), 'cli', 'token.create', 'token');
"""


async def seed(url: str) -> None:
    """Bring the schema up to date and add SEED."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await upgrade(conn)
        await conn.execute(SEED.encode())
