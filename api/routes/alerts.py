"""/api/v1/alerts: the operators' view of device alerts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from telecare.alerts.types import AlertType
from telecare.api.deps import AnyRole, ListsDep, PoolDep
from telecare.api.filters import SinceQuery
from telecare.api.items import alert_public
from telecare.api.pagination import CursorQuery, LimitQuery, Page
from telecare.api.routes.operator_actions import add_item_routes, list_page
from telecare.api.schemas import AlertPublic, Severity
from telecare.api.validation import MAX_BIGINT
from telecare.operator_queue.alerts import get_alert, list_alerts

router = APIRouter(prefix="/alerts", tags=["alerts"])

AlertState = Literal["open", "acknowledged", "resolved"]


@router.get("", response_model=Page[AlertPublic])
async def list_(
    request: Request,
    pool: PoolDep,
    lists: ListsDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    since: SinceQuery = None,
    state: AlertState | None = None,
    type_: Annotated[AlertType | None, Query(alias="type")] = None,
    device_id: str | None = None,
    severity: Severity | None = None,
    group_id: Annotated[
        int | None, Query(ge=1, le=MAX_BIGINT, description="alerts grouped under this one")
    ] = None,
    top_level: Annotated[
        bool, Query(description="leave out alerts grouped under an area_outage")
    ] = False,
) -> Response:
    return await list_page(
        request,
        lists,
        "alert",
        limit=limit,
        cursor=cursor,
        fetch=lambda rows, before_id: list_alerts(
            pool,
            limit=rows,
            before_id=before_id,
            since=since,
            state=state,
            type=type_.value if type_ else None,
            device_id=device_id,
            severity=severity,
            group_id=group_id,
            top_level=top_level,
        ),
        public=alert_public,
    )


add_item_routes(router, "alert", get=get_alert, public=alert_public, response_model=AlertPublic)
