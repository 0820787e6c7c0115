"""/api/v1/alarms: alarms received from devices, for the operators' queue."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from alerts.alarms import get_alarm, list_alarms
from api.deps import AnyRole, ListsDep, PoolDep, json_response
from api.filters import SinceQuery
from api.items import alarm_public
from api.pagination import CursorQuery, LimitQuery, Page, decode_id_cursor, page
from api.routes.operator_actions import add_item_routes
from api.schemas import AlarmPublic, Severity
from core.protocol import AlarmEvent

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
    before_id = decode_id_cursor(cursor)  # a bad cursor: 422 before anything else

    async def compute() -> bytes:
        rows = await list_alarms(
            pool,
            limit=limit + 1,
            before_id=before_id,
            since=since,
            state=state,
            device_id=device_id,
            event=event.value if event else None,
            severity=severity,
        )
        return page(rows, limit, item=alarm_public, key=lambda a: a.id).model_dump_json().encode()

    return json_response(await lists.answer("alarm", request.url.query, compute))


add_item_routes(router, "alarm", get=get_alarm, public=alarm_public, response_model=AlarmPublic)
