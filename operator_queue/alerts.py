"""Reading alerts with their history, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from telecare.db.pool import Pool
from telecare.operator_queue.item_errors import ItemNotFound


@dataclass(frozen=True)
class AlertRecord:
    id: int
    device_id: str | None
    area: str | None
    type: str
    severity: str
    state: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    details: dict[str, Any]
    group_id: int | None
    grouped: int  # for an area_outage: how many alerts are grouped under it now
    history: list[dict[str, Any]]


_SELECT = """
SELECT a.id, a.device_id, a.area, a.type, a.severity, a.state, a.raised_at, a.acknowledged_at,
       a.acknowledged_by, a.resolved_at, a.resolved_by, a.details, a.group_id,
       CASE WHEN a.type = 'area_outage'
            THEN (SELECT count(*) FROM alerts m WHERE m.group_id = a.id) ELSE 0 END AS grouped,
       coalesce((SELECT jsonb_agg(jsonb_build_object('at', h.at, 'action', h.action,
                                                    'actor', h.actor, 'note', h.note)
                                  ORDER BY h.at, h.id)
                 FROM alert_history h WHERE h.alert_id = a.id), '[]'::jsonb) AS history
FROM alerts a
WHERE (%(before)s::bigint IS NULL OR a.id < %(before)s)
  AND (%(ids)s::bigint[] IS NULL OR a.id = ANY(%(ids)s))
  AND (%(since)s::timestamptz IS NULL OR a.raised_at >= %(since)s)
  AND (%(state)s::text IS NULL OR a.state = %(state)s)
  AND (%(type)s::text IS NULL OR a.type = %(type)s)
  AND (%(device_id)s::text IS NULL OR a.device_id = %(device_id)s)
  AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
  AND (%(group_id)s::bigint IS NULL OR a.group_id = %(group_id)s)
  AND (NOT %(top_level)s OR a.group_id IS NULL)
ORDER BY a.id DESC
LIMIT %(limit)s
"""


async def list_alerts(
    pool: Pool,
    *,
    limit: int,
    before_id: int | None = None,
    ids: Sequence[int] | None = None,
    since: datetime | None = None,
    state: str | None = None,
    type: str | None = None,
    device_id: str | None = None,
    severity: str | None = None,
    group_id: int | None = None,
    top_level: bool = False,
) -> list[AlertRecord]:
    params = {
        "before": before_id,
        "ids": list(ids) if ids is not None else None,
        "since": since,
        "state": state,
        "type": type,
        "device_id": device_id,
        "severity": severity,
        "group_id": group_id,
        "top_level": top_level,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(AlertRecord)) as cur:
        await cur.execute(_SELECT, params)
        return await cur.fetchall()


async def get_alert(pool: Pool, alert_id: int) -> AlertRecord:
    rows = await list_alerts(pool, limit=1, ids=[alert_id])
    if not rows:
        raise ItemNotFound("alert", alert_id)
    return rows[0]
