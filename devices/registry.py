"""Registering, reading and listing devices."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from core.db import Pool
from core.notifications import DEVICE_CHANGED, notify
from devices.errors import DeviceAlreadyRegistered, DeviceNotFound
from devices.passwords import hash_password, new_password
from devices.postcodes import postcode_district
from devices.records import DEVICE_COLUMNS, DEVICE_FROM, STATUS_SQL, DeviceRecord


@dataclass(frozen=True)
class Registered:
    device: DeviceRecord
    mqtt_password: str


async def register_device(
    pool: Pool,
    *,
    device_id: str,
    heartbeat_interval_s: int,
    heartbeat_grace_s: int | None = None,
    serial: str | None = None,
    model: str | None = None,
    manufacturer: str | None = None,
    resident_ref: str | None = None,
    address: str | None = None,
    postcode: str | None = None,
    migration_stage: str = "analogue",
) -> Registered:
    password = new_password()
    async with pool.connection() as conn, conn.transaction():
        try:
            await conn.execute(
                """INSERT INTO devices (device_id, serial, model, manufacturer, resident_ref,
                       address, postcode, postcode_district, heartbeat_interval_s,
                       heartbeat_grace_s, migration_stage, mqtt_password_hash)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [
                    device_id,
                    serial,
                    model,
                    manufacturer,
                    resident_ref,
                    address,
                    postcode,
                    postcode_district(postcode) if postcode else None,
                    heartbeat_interval_s,
                    heartbeat_grace_s,
                    migration_stage,
                    hash_password(password),
                ],
            )
        except psycopg.errors.UniqueViolation:
            raise DeviceAlreadyRegistered(device_id) from None
        await notify(conn, DEVICE_CHANGED, device_id)
        device = await _get(conn, device_id)
    return Registered(device, password)


async def get_device(pool: Pool, device_id: str) -> DeviceRecord:
    async with pool.connection() as conn:
        return await _get(conn, device_id)


async def _get(conn: psycopg.AsyncConnection, device_id: str) -> DeviceRecord:
    async with conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.device_id = %s",  # noqa: S608 - constant SQL
            [device_id],
        )
        device = await cur.fetchone()
    if device is None:
        raise DeviceNotFound(device_id)
    return device


async def list_devices(
    pool: Pool,
    *,
    limit: int,
    after: str | None = None,
    status: str | None = None,
    migration_stage: str | None = None,
    postcode_district: str | None = None,
    include_decommissioned: bool = False,
) -> list[DeviceRecord]:
    """Devices ordered by id, starting after the cursor `after`."""
    conditions = ["(%(after)s::text IS NULL OR d.device_id > %(after)s)"]
    if not include_decommissioned:
        conditions.append("d.decommissioned_at IS NULL")
    if status is not None:
        conditions.append(f"({STATUS_SQL}) = %(status)s")
    if migration_stage is not None:
        conditions.append("d.migration_stage = %(stage)s")
    if postcode_district is not None:
        conditions.append("d.postcode_district = upper(%(district)s)")
    query = (
        f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE {' AND '.join(conditions)}"  # noqa: S608 - fixed fragments
        " ORDER BY d.device_id LIMIT %(limit)s"
    )
    params = {
        "after": after,
        "status": status,
        "stage": migration_stage,
        "district": postcode_district,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
