"""/api/v1/quarantine: messages the ingest refused, with the reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import PoolDep, TechnicianRole
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from api.schemas import QuarantinedPublic

router = APIRouter(prefix="/quarantine", tags=["quarantine"])

_SELECT = """
SELECT id, received_at, topic, device_id, reason, detail, payload, payload_size
FROM quarantine
WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
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
) -> Page[QuarantinedPublic]:
    before = decode_cursor(cursor)
    if before is not None and not before.isdigit():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "cursor is not valid")
    params = {
        "before": int(before) if before else None,
        "device_id": device_id,
        "reason": reason,
        "limit": limit + 1,
    }
    async with pool.connection() as conn:
        cur = await conn.execute(_SELECT, params)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        QuarantinedPublic(
            id=r[0],
            received_at=r[1],
            topic=r[2],
            device_id=r[3],
            reason=r[4],
            detail=r[5],
            payload=bytes(r[6]).decode("utf-8", errors="replace"),
            payload_size=r[7],
        )
        for r in rows
    ]
    return Page(items=items, next=encode_cursor(str(rows[-1][0])) if more else None)
