"""/api/v1/devices: registration, the live view of each device, changes and decommissioning."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import TypeAdapter

from telecare.api.deps import (
    AdminRole,
    AnyRole,
    CredentialsDep,
    MetricsDep,
    PoolDep,
    TechnicianRole,
)
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page
from telecare.api.schemas import (
    DeviceCreate,
    DeviceCredentials,
    DevicePublic,
    DeviceRegistered,
    DeviceUpdate,
    MigrationStage,
)
from telecare.api.validation import body_error
from telecare.devices.changes import decommission_device, rotate_credentials, update_device
from telecare.devices.records import DeviceRecord
from telecare.devices.registry import NewDevice, get_device, list_devices, register_device

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceStatus = Literal["online", "overdue", "offline", "never_seen", "decommissioned"]


_PUBLIC = TypeAdapter(DevicePublic)


def public(device: DeviceRecord) -> DevicePublic:
    return _PUBLIC.validate_python(vars(device))


@router.post("", status_code=status.HTTP_201_CREATED)
async def register(
    body: DeviceCreate,
    pool: PoolDep,
    principal: TechnicianRole,
    credentials: CredentialsDep,
    metrics: MetricsDep,
) -> DeviceRegistered:
    """Register a device; its MQTT password is in this response only."""
    registered = await register_device(
        pool, NewDevice(**body.model_dump()), actor=principal.actor, credentials=credentials
    )
    metrics.devices_registered.labels("api").inc()
    return DeviceRegistered(**vars(registered.device), mqtt_password=registered.mqtt_password)


@router.get("")
async def list_(
    pool: PoolDep,
    _: AnyRole,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    migration_stage: MigrationStage | None = None,
    postcode_district: str | None = None,
    model: str | None = None,
    firmware: str | None = None,
    overdue_only: Annotated[
        bool, Query(description="past interval + grace, whatever the status label")
    ] = False,
    include_decommissioned: bool = False,
) -> Page[DevicePublic]:
    rows = await list_devices(
        pool,
        limit=limit + 1,
        after=decode_cursor(cursor),
        status=status_,
        migration_stage=migration_stage,
        postcode_district=postcode_district,
        model=model,
        firmware=firmware,
        overdue_only=overdue_only,
        # asking for decommissioned devices includes them
        include_decommissioned=include_decommissioned or status_ == "decommissioned",
    )
    return page(rows, limit, item=public, key=lambda d: d.device_id)


@router.get("/{device_id}")
async def read(device_id: str, pool: PoolDep, _: AnyRole) -> DevicePublic:
    return public(await get_device(pool, device_id))


@router.patch("/{device_id}")
async def update(
    device_id: str, body: DeviceUpdate, pool: PoolDep, principal: TechnicianRole
) -> DevicePublic:
    """Change the fields sent (null clears an optional field); a decommissioned device: 409."""
    changes = body.changes()
    if not changes:
        raise body_error(None, "send at least one field to change")
    return public(await update_device(pool, device_id, changes, actor=principal.actor))


@router.delete("/{device_id}")
async def decommission(
    device_id: str, pool: PoolDep, principal: AdminRole, credentials: CredentialsDep
) -> DevicePublic:
    """Decommission: the device and its history stay, its broker client is removed."""
    device = await decommission_device(
        pool, device_id, actor=principal.actor, credentials=credentials
    )
    return public(device)


@router.post("/{device_id}/credentials")
async def rotate(
    device_id: str, pool: PoolDep, principal: TechnicianRole, credentials: CredentialsDep
) -> DeviceCredentials:
    """A new MQTT password, shown only here; the old one stops working at once."""
    rotated = await rotate_credentials(
        pool, device_id, actor=principal.actor, credentials=credentials
    )
    return DeviceCredentials(**asdict(rotated))
