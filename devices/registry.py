"""Registering, reading and listing devices."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg
from psycopg.rows import class_row

from core import audit
from core.db import Pool
from core.notifications import DEVICE_CHANGED, notify
from devices.credentials import BrokerCredentials, DeviceSecret, NoBrokerCredentials
from devices.errors import (
    BrokerUnavailable,
    DeviceAlreadyRegistered,
    DeviceDecommissioned,
    DeviceNotFound,
)
from devices.passwords import hash_password, new_password
from devices.postcodes import postcode_district
from devices.records import DEADLINE_SQL, DEVICE_COLUMNS, DEVICE_FROM, STATUS_SQL, DeviceRecord


@dataclass(frozen=True)
class NewDevice:
    """What a technician states about a device at registration (validated by the caller)."""

    device_id: str
    heartbeat_interval_s: int
    heartbeat_grace_s: int | None = None
    serial: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    resident_ref: str | None = None
    address: str | None = None
    postcode: str | None = None
    migration_stage: str = "analogue"


@dataclass(frozen=True)
class Registered:
    device: DeviceRecord
    mqtt_password: str


async def register_device(
    pool: Pool,
    new: NewDevice,
    *,
    actor: audit.Actor = audit.SYSTEM,
    credentials: BrokerCredentials | None = None,
) -> Registered:
    """Register one device; its broker client is made before the commit (or nothing is)."""
    password = new_password()
    async with pool.connection() as conn, conn.transaction():
        await insert_device(conn, new, password_hash=hash_password(password), actor=actor)
        refused = await (credentials or NoBrokerCredentials()).add(
            [DeviceSecret(new.device_id, password)]
        )
        if refused:
            raise BrokerUnavailable(f"broker refused device {new.device_id!r}: {refused}")
        device = await fetch_device(conn, new.device_id)
    return Registered(device, password)


async def insert_device(
    conn: psycopg.AsyncConnection, new: NewDevice, *, password_hash: str, actor: audit.Actor
) -> None:
    """The device row, its first migration-history entry, the audit entry and the notification.

    Call inside a transaction (or savepoint); DeviceAlreadyRegistered on a repeat id.
    """
    try:
        await conn.execute(
            """INSERT INTO devices (device_id, serial, model, manufacturer, resident_ref,
                   address, postcode, postcode_district, heartbeat_interval_s,
                   heartbeat_grace_s, migration_stage, mqtt_password_hash)
               VALUES (%(device_id)s, %(serial)s, %(model)s, %(manufacturer)s, %(resident_ref)s,
                   %(address)s, %(postcode)s, %(district)s, %(heartbeat_interval_s)s,
                   %(heartbeat_grace_s)s, %(migration_stage)s, %(hash)s)""",
            {
                **asdict(new),
                "district": postcode_district(new.postcode) if new.postcode else None,
                "hash": password_hash,
            },
        )
    except psycopg.errors.UniqueViolation:
        raise DeviceAlreadyRegistered(new.device_id) from None
    await conn.execute(
        "INSERT INTO migration_history (device_id, actor, to_stage, note)"
        " VALUES (%s, %s, %s, 'registered')",
        [new.device_id, actor.name, new.migration_stage],
    )
    await audit.record(
        conn,
        actor,
        action="device.register",
        target_type="device",
        target_id=new.device_id,
        details={"migration_stage": new.migration_stage},
    )
    await notify(conn, DEVICE_CHANGED, new.device_id)


async def get_device(pool: Pool, device_id: str) -> DeviceRecord:
    async with pool.connection() as conn:
        return await fetch_device(conn, device_id)


async def fetch_device(
    conn: psycopg.AsyncConnection, device_id: str, *, for_update: bool = False
) -> DeviceRecord:
    """One device with its live status; `for_update` locks its row until the transaction ends."""
    lock = " FOR UPDATE OF d" if for_update else ""
    async with conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.device_id = %s{lock}",  # noqa: S608 - constant SQL
            [device_id],
        )
        device = await cur.fetchone()
    if device is None:
        raise DeviceNotFound(device_id)
    return device


async def lock_active_device(conn: psycopg.AsyncConnection, device_id: str) -> DeviceRecord:
    """Lock a device that may still change; DeviceDecommissioned if it may not."""
    device = await fetch_device(conn, device_id, for_update=True)
    if device.decommissioned_at is not None:
        raise DeviceDecommissioned(device_id)
    return device


# Each filter is a fixed SQL fragment; the ones on devices columns are served by the partial
# indexes of migration 0003, which yield rows in device_id order (the cursor order).
_FILTERS = {
    "status": f"({STATUS_SQL}) = %(status)s",
    "migration_stage": "d.migration_stage = %(migration_stage)s",
    "postcode_district": "d.postcode_district = upper(%(postcode_district)s)",
    "model": "d.model = %(model)s",
    "firmware": "s.firmware = %(firmware)s",
}


async def list_devices(
    pool: Pool,
    *,
    limit: int,
    after: str | None = None,
    status: str | None = None,
    migration_stage: str | None = None,
    postcode_district: str | None = None,
    model: str | None = None,
    firmware: str | None = None,
    overdue_only: bool = False,
    include_decommissioned: bool = False,
) -> list[DeviceRecord]:
    """Devices ordered by id, starting after the cursor `after`.

    `overdue_only`: past the PROTOCOL section 3 deadline, whatever the status label says
    (an overdue device whose Last Will came is `offline`, one never heard from `never_seen`).
    """
    params: dict[str, object] = {
        "after": after,
        "limit": limit,
        "status": status,
        "migration_stage": migration_stage,
        "postcode_district": postcode_district,
        "model": model,
        "firmware": firmware,
    }
    conditions = ["(%(after)s::text IS NULL OR d.device_id > %(after)s)"]
    conditions += [sql for name, sql in _FILTERS.items() if params[name] is not None]
    if not include_decommissioned:
        conditions.append("d.decommissioned_at IS NULL")
    if overdue_only:
        conditions.append(f"d.decommissioned_at IS NULL AND ({DEADLINE_SQL}) < now()")
    query = (
        f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE {' AND '.join(conditions)}"  # noqa: S608 - fixed fragments
        " ORDER BY d.device_id LIMIT %(limit)s"
    )
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
