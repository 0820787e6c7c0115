"""/api/v1/devices: registration and the live view of each device."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import AnyRole, PoolDep, TechnicianRole
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page
from api.schemas import DeviceCreate, DevicePublic, DeviceRegistered, MigrationStage
from devices.errors import DeviceAlreadyRegistered, DeviceNotFound
from devices.records import DeviceRecord
from devices.registry import get_device, list_devices, register_device

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceStatus = Literal["online", "overdue", "offline", "never_seen"]


def public(device: DeviceRecord) -> DevicePublic:
    return DevicePublic.model_validate(asdict(device))


@router.post("", status_code=status.HTTP_201_CREATED)
async def register(body: DeviceCreate, pool: PoolDep, _: TechnicianRole) -> DeviceRegistered:
    try:
        registered = await register_device(pool, **body.model_dump())
    except DeviceAlreadyRegistered as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return DeviceRegistered(
        **public(registered.device).model_dump(), mqtt_password=registered.mqtt_password
    )


@router.get("")
async def list_(
    pool: PoolDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    migration_stage: MigrationStage | None = None,
    postcode_district: str | None = None,
) -> Page[DevicePublic]:
    rows = await list_devices(
        pool,
        limit=limit + 1,
        after=decode_cursor(cursor),
        status=status_,
        migration_stage=migration_stage,
        postcode_district=postcode_district,
    )
    return page(rows, limit, item=public, key=lambda d: d.device_id)


@router.get("/{device_id}")
async def read(device_id: str, pool: PoolDep, _: AnyRole) -> DevicePublic:
    try:
        return public(await get_device(pool, device_id))
    except DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
