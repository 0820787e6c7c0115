"""/api/v1/alerts: the operators' view of device alerts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from alerts.queries import list_alerts
from alerts.types import AlertType
from api.deps import AnyRole, PoolDep
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from api.schemas import AlertPublic

router = APIRouter(prefix="/alerts", tags=["alerts"])

AlertState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["critical", "high", "medium", "low"]


@router.get("")
async def list_(
    pool: PoolDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    state: AlertState | None = None,
    type_: Annotated[AlertType | None, Query(alias="type")] = None,
    device_id: str | None = None,
    severity: Severity | None = None,
) -> Page[AlertPublic]:
    before = decode_cursor(cursor)
    if before is not None and not before.isdigit():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "cursor is not valid")
    rows = await list_alerts(
        pool,
        limit=limit + 1,
        before_id=int(before) if before else None,
        state=state,
        type=type_.value if type_ else None,
        device_id=device_id,
        severity=severity,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[AlertPublic.model_validate(asdict(a)) for a in rows],
        next=encode_cursor(str(rows[-1].id)) if more else None,
    )
