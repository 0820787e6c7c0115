"""/api/v1/alarms: alarms received from devices, for the operators' queue."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from telecare.alarms.queries import get_alarm, list_alarms
from telecare.api.deps import AnyRole, ListsDep, PoolDep
from telecare.api.filters import SinceQuery
from telecare.api.items import alarm_public
from telecare.api.pagination import CursorQuery, LimitQuery, Page
from telecare.api.routes.operator_actions import add_item_routes, list_page
from telecare.api.schemas import AlarmPublic, Severity
from telecare.protocol.messages import AlarmEvent

router = APIRouter(prefix="/alarms", tags=["alarms"])

AlarmState = Literal["open", "acknowledged", "resolved"]


@router.get("", response_model=Page[AlarmPublic])
async def list_(
    request: Request,
    pool: PoolDep,
    lists: ListsDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    since: SinceQuery = None,
    state: AlarmState | None = None,
    device_id: str | None = None,
    event: AlarmEvent | None = None,
    severity: Severity | None = None,
) -> Response:
    return await list_page(
        request,
        lists,
        "alarm",
        limit=limit,
        cursor=cursor,
        fetch=lambda rows, before_id: list_alarms(
            pool,
            limit=rows,
            before_id=before_id,
            since=since,
            state=state,
            device_id=device_id,
            event=event.value if event else None,
            severity=severity,
        ),
        public=alarm_public,
    )


add_item_routes(router, "alarm", get=get_alarm, public=alarm_public, response_model=AlarmPublic)
