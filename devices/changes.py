"""Changing a registered device: its details, its credentials, its decommissioning.

Each change is one transaction: the device row is locked, the change made, the audit entry
written and the other processes notified; a broker credential change happens before the
commit, so a broker that does not confirm rolls the whole change back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from telecare.db import audit
from telecare.db.notifications import DEVICE_CHANGED, notify
from telecare.db.pool import Pool
from telecare.devices.certificates import DeviceCertificates, RevocationReason, revoke_active
from telecare.devices.credentials import BrokerCredentials
from telecare.devices.device_ca import IssuedCertificate
from telecare.devices.errors import NoActiveCertificate, NotACertificateDevice
from telecare.devices.password_file import mosquitto_hash
from telecare.devices.passwords import hash_password, new_password
from telecare.devices.postcodes import postcode_district
from telecare.devices.records import DeviceRecord
from telecare.devices.registry import fetch_device, lock_active_device, touch_password_file

log = logging.getLogger(__name__)

EDITABLE = frozenset(
    {
        "heartbeat_interval_s",
        "heartbeat_grace_s",
        "serial",
        "model",
        "manufacturer",
        "resident_ref",
        "address",
        "postcode",
    }
)
# Named in the audit log when they change, never copied into it.
PERSONAL = frozenset({"resident_ref", "address", "postcode"})


@dataclass(frozen=True)
class NewCredentials:
    device_id: str
    mqtt_password: str
    mqtt_password_set_at: datetime


async def update_device(
    pool: Pool, device_id: str, changes: Mapping[str, object], *, actor: audit.Actor
) -> DeviceRecord:
    """Apply `changes` (EDITABLE fields; None clears an optional one). Unchanged values are
    skipped; a new heartbeat interval reaches the alert engine through the notification."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    async with pool.connection() as conn, conn.transaction():
        device = await lock_active_device(conn, device_id)
        changed = {k: v for k, v in changes.items() if getattr(device, k) != v}
        if not changed:
            return device
        columns = dict(changed)
        if "postcode" in changed:
            postcode = changed["postcode"]
            columns["postcode_district"] = (
                postcode_district(postcode) if isinstance(postcode, str) else None
            )
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in columns
        )
        await conn.execute(
            sql.SQL("UPDATE devices SET {}, updated_at = now() WHERE device_id = %s").format(
                assignments
            ),
            [*columns.values(), device_id],
        )
        await audit.record(
            conn,
            actor,
            action="device.update",
            target_type="device",
            target_id=device_id,
            details={
                "fields": sorted(changed),
                "values": {
                    k: {"from": getattr(device, k), "to": v}
                    for k, v in changed.items()
                    if k not in PERSONAL
                },
            },
        )
        await notify(conn, DEVICE_CHANGED, device_id)
        updated = await fetch_device(conn, device_id)
    log.info("device updated device=%s fields=%s actor=%s", device_id, sorted(changed), actor.name)
    return updated


async def decommission_device(
    pool: Pool,
    device_id: str,
    *,
    actor: audit.Actor,
    credentials: BrokerCredentials,
    certificates: DeviceCertificates | None = None,
) -> DeviceRecord:
    """Keep the device and its history, stop it counting as active, remove its broker client
    and revoke its certificates."""
    async with pool.connection() as conn, conn.transaction():
        await lock_active_device(conn, device_id)
        await conn.execute(
            "UPDATE devices SET decommissioned_at = now(), updated_at = now() WHERE device_id = %s",
            [device_id],
        )
        await audit.record(
            conn, actor, action="device.decommission", target_type="device", target_id=device_id
        )
        await notify(conn, DEVICE_CHANGED, device_id)
        await credentials.remove(device_id)
        revoked = await revoke_active(conn, device_id, actor=actor, reason="decommissioned")
        decommissioned = await fetch_device(conn, device_id)
        in_password_file = _in_password_file(decommissioned, certificates)
        if in_password_file:
            await touch_password_file(conn)
    if (revoked or in_password_file) and certificates is not None:
        certificates.changed()
    log.info("device decommissioned device=%s actor=%s", device_id, actor.name)
    return decommissioned


async def reissue_certificate(
    pool: Pool,
    device_id: str,
    *,
    csr_pem: str | None,
    actor: audit.Actor,
    certificates: DeviceCertificates,
) -> IssuedCertificate:
    """A new certificate (from the device's request, or with a generated key), shown once; the
    ones it replaces are revoked in the same transaction and cut off once published."""
    async with pool.connection() as conn, conn.transaction():
        device = await lock_active_device(conn, device_id)
        if device.credential_kind != "certificate":
            raise NotACertificateDevice(device_id)
        revoked = await revoke_active(conn, device_id, actor=actor, reason="superseded")
        issued = await certificates.issue(conn, device_id, csr_pem=csr_pem, actor=actor)
    if revoked:
        certificates.changed()
    return issued


async def revoke_certificates(
    pool: Pool,
    device_id: str,
    *,
    reason: RevocationReason,
    actor: audit.Actor,
    certificates: DeviceCertificates,
) -> list[int]:
    """Revoke the device's certificates in use (the device can no longer connect): a lost or
    stolen hub. NoActiveCertificate if there is none."""
    async with pool.connection() as conn, conn.transaction():
        await lock_active_device(conn, device_id)
        revoked = await revoke_active(conn, device_id, actor=actor, reason=reason)
        if not revoked:
            raise NoActiveCertificate(device_id)
    certificates.changed()
    return revoked


def _in_password_file(device: DeviceRecord, certificates: DeviceCertificates | None) -> bool:
    return (
        certificates is not None
        and certificates.passwords_enabled
        and device.credential_kind == "password"
    )


async def rotate_credentials(
    pool: Pool,
    device_id: str,
    *,
    actor: audit.Actor,
    credentials: BrokerCredentials,
    certificates: DeviceCertificates | None = None,
) -> NewCredentials:
    """A new MQTT password, shown once; the old one stops working at the broker at once (with
    the password file: once the file is rewritten, a few seconds later, when the broker also
    closes a connection made with the old one)."""
    password = new_password()
    async with pool.connection() as conn, conn.transaction():
        device = await lock_active_device(conn, device_id)
        in_password_file = _in_password_file(device, certificates)
        cur = await conn.execute(
            "UPDATE devices SET mqtt_password_hash = %s, mqtt_password_broker = %s,"
            " mqtt_password_set_at = now(), updated_at = now() WHERE device_id = %s"
            " RETURNING mqtt_password_set_at",
            [
                hash_password(password),
                mosquitto_hash(password) if in_password_file else None,
                device_id,
            ],
        )
        row = await cur.fetchone()
        assert row is not None
        await audit.record(
            conn,
            actor,
            action="device.credentials_rotate",
            target_type="device",
            target_id=device_id,
        )
        await credentials.set_password(device_id, password)
        if in_password_file:
            await touch_password_file(conn)
    if in_password_file and certificates is not None:
        certificates.changed()
    log.info("device credentials rotated device=%s actor=%s", device_id, actor.name)
    return NewCredentials(device_id, password, row[0])
