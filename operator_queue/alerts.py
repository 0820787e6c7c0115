"""Reading alerts with their history, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from psycopg import sql
from psycopg.rows import class_row
from pydantic import Field

from telecare.db.pool import Pool
from telecare.db.record_columns import history_of, select_list
from telecare.operator_queue.item_errors import ItemNotFound


@dataclass(frozen=True)
class AlertRecord:
    """An alert as read, and the one declaration of its fields: the select list is made from
    them and the API's `AlertPublic` derives from this class, with these descriptions (a column
    is added here and in its migration)."""

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
    group_id: Annotated[
        int | None, Field(description="the area_outage alert this alert is grouped under, or null")
    ]
    grouped: Annotated[
        int, Field(description="for an area_outage: the alerts grouped under it now")
    ]
    history: Sequence[Mapping[str, object]]  # JSON objects: at, action, actor, note


# Each field as `a.<field>`, but for these computed ones.
_COMPUTED = {
    "grouped": """CASE WHEN a.type = 'area_outage'
                  THEN (SELECT count(*) FROM alerts m WHERE m.group_id = a.id) ELSE 0 END""",
    "history": history_of("alert_history", "alert_id"),
}
COLUMNS = select_list(AlertRecord, table="a", computed=_COMPUTED)

_SELECT = sql.SQL("""
SELECT {columns}
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
""").format(columns=COLUMNS)


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
