"""/api/v1/quarantine: messages the ingest refused, with the reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from telecare.api.deps import PoolDep, TechnicianRole
from telecare.api.filters import SinceQuery
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_id_cursor, page
from telecare.api.schemas import QuarantinedPublic

router = APIRouter(prefix="/quarantine", tags=["quarantine"])

_SELECT = """
SELECT id, received_at, topic, device_id, reason, detail, payload, payload_size
FROM quarantine
WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
  AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
  AND (%(device_id)s::text IS NULL OR device_id = %(device_id)s)
  AND (%(reason)s::text IS NULL OR reason = %(reason)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


@router.get("")
async def list_(
    pool: PoolDep,
    _: TechnicianRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    device_id: str | None = None,
    reason: Annotated[str | None, Query(description="e.g. invalid_json, schema, oversized")] = None,
    since: SinceQuery = None,
) -> Page[QuarantinedPublic]:
    params = {
        "before": decode_id_cursor(cursor),
        "since": since,
        "device_id": device_id,
        "reason": reason,
        "limit": limit + 1,
    }
    async with pool.connection() as conn:
        cur = await conn.execute(_SELECT, params)
        rows = await cur.fetchall()
    return page(rows, limit, item=_public, key=lambda r: r[0])


def _public(r: tuple[Any, ...]) -> QuarantinedPublic:
    return QuarantinedPublic(
        id=r[0],
        received_at=r[1],
        topic=r[2],
        device_id=r[3],
        reason=r[4],
        detail=r[5],
        payload=bytes(r[6]).decode("utf-8", errors="replace"),
        payload_size=r[7],
    )
