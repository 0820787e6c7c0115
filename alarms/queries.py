"""Reading alarms received from devices, with what operators did about them, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from telecare.db.pool import Pool
from telecare.db.record_columns import history_of, select_list
from telecare.operator_queue.item_errors import ItemNotFound


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm as read, and the one declaration of its fields: the select list is made from
    them and the API's `AlarmPublic` derives from this class (a column is added here and in its
    migration)."""

    id: int
    device_id: str
    msg_id: str
    event: str
    severity: str
    state: str
    device_ts: datetime
    seq: int
    peripheral: str | None
    detail: str | None
    received_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    history: Sequence[Mapping[str, object]]  # JSON objects: at, action, actor, note


# Each field as `a.<field>`, but for this computed one.
_COMPUTED = {
    "history": history_of("alarm_history", "alarm_id"),
}
COLUMNS = select_list(AlarmRecord, table="a", computed=_COMPUTED)

_SELECT = sql.SQL("""
SELECT {columns}
FROM alarms a
WHERE (%(before)s::bigint IS NULL OR a.id < %(before)s)
  AND (%(ids)s::bigint[] IS NULL OR a.id = ANY(%(ids)s))
  AND (%(since)s::timestamptz IS NULL OR a.received_at >= %(since)s)
  AND (%(state)s::text IS NULL OR a.state = %(state)s)
  AND (%(device_id)s::text IS NULL OR a.device_id = %(device_id)s)
  AND (%(event)s::text IS NULL OR a.event = %(event)s)
  AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
ORDER BY a.id DESC
LIMIT %(limit)s
""").format(columns=COLUMNS)


async def list_alarms(
    pool: Pool,
    *,
    limit: int,
    before_id: int | None = None,
    ids: Sequence[int] | None = None,
    since: datetime | None = None,
    state: str | None = None,
    device_id: str | None = None,
    event: str | None = None,
    severity: str | None = None,
) -> list[AlarmRecord]:
    params = {
        "before": before_id,
        "ids": list(ids) if ids is not None else None,
        "since": since,
        "state": state,
        "device_id": device_id,
        "event": event,
        "severity": severity,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(AlarmRecord)) as cur:
        await cur.execute(_SELECT, params)
        return await cur.fetchall()


async def get_alarm(pool: Pool, alarm_id: int) -> AlarmRecord:
    rows = await list_alarms(pool, limit=1, ids=[alarm_id])
    if not rows:
        raise ItemNotFound("alarm", alarm_id)
    return rows[0]
