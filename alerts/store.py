"""Alerts in the database: raised at most once while unresolved, every change in the history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.types import SEVERITY, AlertType
from core.db import Pool

# The partial unique index alerts_one_unresolved makes a second raise a no-op.
_RAISE = """
WITH raised AS (
    INSERT INTO alerts (device_id, type, severity, raised_at, details)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[])
    ON CONFLICT (device_id, type) WHERE state <> 'resolved' DO NOTHING
    RETURNING id, device_id, type
), history AS (
    INSERT INTO alert_history (alert_id, action, actor)
    SELECT id, 'raised', 'system' FROM raised
)
SELECT id, device_id, type FROM raised
"""

_RESOLVE = """
WITH resolved AS (
    UPDATE alerts SET state = 'resolved', resolved_at = %(at)s, resolved_by = %(by)s
    WHERE device_id = ANY(%(devices)s) AND type = ANY(%(types)s) AND state <> 'resolved'
    RETURNING id, device_id, type
), history AS (
    INSERT INTO alert_history (alert_id, at, action, actor, note)
    SELECT id, %(at)s, 'resolved', %(by)s, %(note)s FROM resolved
)
SELECT id, device_id, type FROM resolved
"""


@dataclass(frozen=True)
class Raise:
    device_id: str
    type: AlertType
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Changed:
    alert_id: int
    device_id: str
    type: AlertType


async def raise_alerts(pool: Pool, raises: Sequence[Raise]) -> list[Changed]:
    """Insert the alerts not already open; returns the ones actually raised."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _RAISE,
            [
                [r.device_id for r in raises],
                [r.type.value for r in raises],
                [SEVERITY[r.type] for r in raises],
                [r.at for r in raises],
                [json.dumps(r.details) for r in raises],
            ],
        )
        rows = await cur.fetchall()
    return [Changed(row[0], row[1], AlertType(row[2])) for row in rows]


async def resolve_alerts(
    pool: Pool,
    *,
    device_ids: Sequence[str],
    types: Sequence[AlertType],
    at: datetime,
    by: str,
    note: str | None = None,
) -> list[Changed]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            _RESOLVE,
            {
                "devices": list(device_ids),
                "types": [t.value for t in types],
                "at": at,
                "by": by,
                "note": note,
            },
        )
        rows = await cur.fetchall()
    return [Changed(row[0], row[1], AlertType(row[2])) for row in rows]
