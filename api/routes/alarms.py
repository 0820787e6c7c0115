"""/api/v1/alarms: alarms received from devices, for the operators' queue."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from alerts.alarms import get_alarm, list_alarms
from api.deps import AnyRole, PoolDep
from api.filters import SinceQuery
from api.items import alarm_public
from api.pagination import CursorQuery, LimitQuery, Page, decode_id_cursor, page
from api.routes.operator_actions import add_item_routes
from api.schemas import AlarmPublic, Severity
from core.protocol import AlarmEvent

router = APIRouter(prefix="/alarms", tags=["alarms"])

AlarmState = Literal["open", "acknowledged", "resolved"]


@router.get("")
async def list_(
    pool: PoolDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    since: SinceQuery = None,
    state: AlarmState | None = None,
    device_id: str | None = None,
    event: AlarmEvent | None = None,
    severity: Severity | None = None,
) -> Page[AlarmPublic]:
    rows = await list_alarms(
        pool,
        limit=limit + 1,
        before_id=decode_id_cursor(cursor),
        since=since,
        state=state,
        device_id=device_id,
        event=event.value if event else None,
        severity=severity,
    )
    return page(rows, limit, item=alarm_public, key=lambda a: a.id)


add_item_routes(router, "alarm", get=get_alarm, public=alarm_public, response_model=AlarmPublic)
