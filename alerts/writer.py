"""Alerts in the database: the engine's actions written in order, one statement per run of a kind.

Every statement is idempotent by subject (the partial unique index `alerts_one_unresolved`
makes a second raise a no-op; a resolve touches only unresolved alerts), so a batch retried
after a failure, or repeated by another engine process after a takeover, changes nothing twice.
Every change is in the alert's history, and the `record_event` trigger announces it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from psycopg import AsyncConnection

from telecare.alerts.decisions import Action, Group, Raise, Resolve, ResolveDevice, Ungroup, Update
from telecare.alerts.types import SEVERITY, AlertType
from telecare.db.pool import Pool

_RAISE = """
WITH raised AS (
    INSERT INTO alerts (subject, device_id, area, type, severity, raised_at, details)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::timestamptz[], %s::jsonb[])
    ON CONFLICT (subject) WHERE state <> 'resolved' DO NOTHING
    RETURNING id, subject, type, device_id, raised_at
), history AS (
    INSERT INTO alert_history (alert_id, at, action, actor)
    SELECT id, raised_at, 'raised', 'system' FROM raised
)
SELECT id, subject, type, device_id FROM raised
"""

_RESOLVE = """
WITH wanted AS (
    SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS w(subject, at, by)
), resolved AS (
    UPDATE alerts a SET state = 'resolved', resolved_at = w.at, resolved_by = w.by
    FROM wanted w WHERE a.subject = w.subject AND a.state <> 'resolved'
    RETURNING a.id, a.subject, a.type, a.device_id, w.at, w.by
), history AS (
    INSERT INTO alert_history (alert_id, at, action, actor)
    SELECT id, at, 'resolved', by FROM resolved
)
SELECT id, subject, type, device_id FROM resolved
"""

_RESOLVE_DEVICE = """
WITH wanted AS (
    SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS w(device_id, at, by)
), resolved AS (
    UPDATE alerts a SET state = 'resolved', resolved_at = w.at, resolved_by = w.by
    FROM wanted w WHERE a.device_id = w.device_id AND a.state <> 'resolved'
    RETURNING a.id, a.subject, a.type, a.device_id, w.at, w.by
), history AS (
    INSERT INTO alert_history (alert_id, at, action, actor, note)
    SELECT id, at, 'resolved', by, 'device decommissioned' FROM resolved
)
SELECT id, subject, type, device_id FROM resolved
"""

_UPDATE = """
WITH wanted AS (
    SELECT * FROM unnest(%s::text[], %s::jsonb[]) AS w(subject, details)
), updated AS (
    UPDATE alerts a SET details = a.details || w.details
    FROM wanted w
    WHERE a.subject = w.subject AND a.state <> 'resolved'
      AND a.details IS DISTINCT FROM a.details || w.details
    RETURNING a.id, a.subject, a.type, a.device_id, w.details
), history AS (
    INSERT INTO alert_history (alert_id, action, actor, note)
    SELECT id, 'details_changed', 'system', details::text FROM updated
)
SELECT id, subject, type, device_id FROM updated
"""

_GROUP = """
WITH pairs AS (
    SELECT * FROM unnest(%s::text[], %s::text[]) AS p(area, member)
), grouped AS (
    UPDATE alerts m SET group_id = g.id
    FROM pairs p JOIN alerts g ON g.subject = p.area AND g.state <> 'resolved'
    WHERE m.subject = p.member AND m.state <> 'resolved' AND m.group_id IS DISTINCT FROM g.id
    RETURNING m.id, m.subject, m.type, m.device_id, g.id AS group_id
), history AS (
    INSERT INTO alert_history (alert_id, action, actor, note)
    SELECT id, 'grouped', 'system', 'under area_outage #' || group_id FROM grouped
)
SELECT id, subject, type, device_id FROM grouped
"""

_UNGROUP = """
WITH ungrouped AS (
    UPDATE alerts m SET group_id = NULL
    FROM alerts g
    WHERE g.subject = ANY(%s::text[]) AND g.state <> 'resolved'
      AND m.group_id = g.id AND m.state <> 'resolved'
    RETURNING m.id, m.subject, m.type, m.device_id, g.id AS group_id
), history AS (
    INSERT INTO alert_history (alert_id, action, actor, note)
    SELECT id, 'ungrouped', 'system', 'area_outage #' || group_id || ' resolved' FROM ungrouped
)
SELECT id, subject, type, device_id FROM ungrouped
"""


@dataclass(frozen=True)
class Changed:
    """An alert a write changed: `change` is raised, resolved, updated, grouped or ungrouped."""

    change: str
    alert_id: int
    subject: str
    type: AlertType
    device_id: str | None


async def write_actions(pool: Pool, actions: Sequence[Action]) -> list[Changed]:
    """Write `actions` in order, in one transaction; answers what actually changed."""
    changed: list[Changed] = []
    async with pool.connection() as conn, conn.transaction():
        for kind, run in itertools.groupby(actions, key=type):
            changed += await _write_run(conn, kind, list(run))
    return changed


async def _write_run(conn: AsyncConnection, kind: type, run: list[Any]) -> list[Changed]:
    query: LiteralString
    if kind is Raise:
        raises: list[Raise] = run
        query, change = _RAISE, "raised"
        params: list[Any] = [
            [r.subject for r in raises],
            [r.device_id for r in raises],
            [r.area for r in raises],
            [r.type.value for r in raises],
            [SEVERITY[r.type] for r in raises],
            [r.at for r in raises],
            [json.dumps(r.details) for r in raises],
        ]
    elif kind is Resolve:
        query, change = _RESOLVE, "resolved"
        params = [[r.subject for r in run], [r.at for r in run], [r.by for r in run]]
    elif kind is ResolveDevice:
        query, change = _RESOLVE_DEVICE, "resolved"
        params = [[r.device_id for r in run], [r.at for r in run], [r.by for r in run]]
    elif kind is Update:
        merged: dict[str, dict[str, Any]] = {}
        for update in run:
            merged.setdefault(update.subject, {}).update(update.details)
        query, change = _UPDATE, "updated"
        params = [list(merged), [json.dumps(d) for d in merged.values()]]
    elif kind is Group:
        pairs = [(g.area_subject, m) for g in run for m in g.members]
        query, change = _GROUP, "grouped"
        params = [[a for a, _ in pairs], [m for _, m in pairs]]
    elif kind is Ungroup:
        query, change = _UNGROUP, "ungrouped"
        params = [[u.area_subject for u in run]]
    else:
        raise TypeError(f"not an alert action: {kind.__name__}")
    cur = await conn.execute(query, params)
    rows = await cur.fetchall()
    return [Changed(change, row[0], row[1], AlertType(row[2]), row[3]) for row in rows]
