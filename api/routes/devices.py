"""/api/v1/devices: registration, the live view of each device, changes and decommissioning."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import TypeAdapter

from telecare.api.deps import (
    AdminRole,
    AnyRole,
    CertificatesDep,
    ContextDep,
    CredentialsDep,
    MetricsDep,
    PoolDep,
    TechnicianRole,
)
from telecare.api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page
from telecare.api.schemas import (
    CertificateBundle,
    CertificatePublic,
    CertificateRequest,
    CertificateRevocation,
    DeviceCredentials,
    DeviceCredentialView,
    DevicePublic,
    DeviceRegistered,
    DeviceRegistration,
    DeviceUpdate,
    MigrationStage,
    certificate_bundle,
)
from telecare.api.validation import body_error
from telecare.devices.certificates import DeviceCertificates, device_certificates, serial_hex
from telecare.devices.changes import (
    decommission_device,
    reissue_certificate,
    revoke_certificates,
    rotate_credentials,
    update_device,
)
from telecare.devices.records import DeviceRecord
from telecare.devices.registry import (
    NewDevice,
    fetch_device,
    get_device,
    list_devices,
    register_device,
)

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceStatus = Literal["online", "overdue", "offline", "never_seen", "decommissioned"]


_PUBLIC = TypeAdapter(DevicePublic)


def public(device: DeviceRecord) -> DevicePublic:
    return _PUBLIC.validate_python(vars(device))


@router.post("", status_code=status.HTTP_201_CREATED)
async def register(
    body: DeviceRegistration,
    pool: PoolDep,
    principal: TechnicianRole,
    credentials: CredentialsDep,
    certificates: CertificatesDep,
    metrics: MetricsDep,
) -> DeviceRegistered:
    """Register a device; its MQTT password and certificate bundle are in this response only."""
    if body.csr is not None and certificates is None:
        raise body_error("csr", "device certificates are not in use on this deployment")
    registered = await register_device(
        pool,
        NewDevice(**body.device_fields()),  # type: ignore[arg-type]
        actor=principal.actor,
        credentials=credentials,
        certificates=certificates,
        csr_pem=body.csr,
    )
    metrics.devices_registered.labels("api").inc()
    bundle = None
    if registered.certificate is not None and certificates is not None:
        bundle = certificate_bundle(registered.certificate, certificates)
    return DeviceRegistered(
        **vars(registered.device), mqtt_password=registered.mqtt_password, certificate=bundle
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
    device_id: str,
    pool: PoolDep,
    principal: AdminRole,
    credentials: CredentialsDep,
    certificates: CertificatesDep,
) -> DevicePublic:
    """Decommission: the device and its history stay, its broker client is removed and its
    certificates revoked."""
    device = await decommission_device(
        pool, device_id, actor=principal.actor, credentials=credentials, certificates=certificates
    )
    return public(device)


@router.post("/{device_id}/credentials")
async def rotate(
    device_id: str,
    pool: PoolDep,
    principal: TechnicianRole,
    credentials: CredentialsDep,
    certificates: CertificatesDep,
) -> DeviceCredentials:
    """A new MQTT password, shown only here; the old one stops working at once."""
    rotated = await rotate_credentials(
        pool, device_id, actor=principal.actor, credentials=credentials, certificates=certificates
    )
    return DeviceCredentials(**asdict(rotated))


def _in_use(certificates: DeviceCertificates | None) -> DeviceCertificates:
    if certificates is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "device certificates are not in use on this deployment"
            " (TELECARE_BROKER_CREDENTIALS is not `certificates`)",
        )
    return certificates


@router.get("/{device_id}/credentials")
async def credentials_view(
    device_id: str, pool: PoolDep, _: TechnicianRole, context: ContextDep
) -> DeviceCredentialView:
    """How the device proves who it is: its certificates (serial, expiry, revocation) and when
    its password was set. No secret is ever shown here."""
    async with pool.connection() as conn:
        device = await fetch_device(conn, device_id)
        found = await device_certificates(conn, device_id)
    now = datetime.now(UTC)
    return DeviceCredentialView(
        device_id=device_id,
        broker_credentials=context.settings.broker_credentials,
        mqtt_password_set_at=device.mqtt_password_set_at,
        certificates=[
            CertificatePublic(
                **{**vars(c), "serial": serial_hex(c.serial), "status": c.status(now)}
            )
            for c in found
        ],
    )


@router.post("/{device_id}/certificate")
async def reissue(
    device_id: str,
    body: CertificateRequest,
    pool: PoolDep,
    principal: TechnicianRole,
    certificates: CertificatesDep,
) -> CertificateBundle:
    """A new certificate, shown only here; the one it replaces is revoked and connects no more.
    409 for a device that proves who it is with a password."""
    ca = _in_use(certificates)
    issued = await reissue_certificate(
        pool, device_id, csr_pem=body.csr, actor=principal.actor, certificates=ca
    )
    return certificate_bundle(issued, ca)


@router.post("/{device_id}/certificate/revoke")
async def revoke(
    device_id: str,
    body: CertificateRevocation,
    pool: PoolDep,
    principal: TechnicianRole,
    certificates: CertificatesDep,
    context: ContextDep,
) -> DeviceCredentialView:
    """Revoke the device's certificates in use: it cannot connect again, and its open
    connection is closed once the revocation list is published. 409 if none is in use."""
    ca = _in_use(certificates)
    await revoke_certificates(
        pool, device_id, reason=body.reason, actor=principal.actor, certificates=ca
    )
    return await credentials_view(device_id, pool, principal, context)
