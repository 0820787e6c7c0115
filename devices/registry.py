"""Registering, reading and listing devices."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from telecare.db import audit
from telecare.db.notifications import DEVICE_CHANGED
from telecare.db.pool import Pool
from telecare.devices.certificates import DeviceCertificates
from telecare.devices.credentials import BrokerCredentials, DeviceSecret, NoBrokerCredentials
from telecare.devices.device_ca import IssuedCertificate
from telecare.devices.errors import (
    BrokerUnavailable,
    CredentialUnavailable,
    DeviceAlreadyRegistered,
    DeviceDecommissioned,
    DeviceNotFound,
)
from telecare.devices.password_file import mosquitto_hash
from telecare.devices.passwords import hash_password, new_password
from telecare.devices.postcodes import postcode_district
from telecare.devices.records import (
    DEADLINE_SQL,
    DEVICE_COLUMNS,
    DEVICE_FROM,
    STATUS_SQL,
    DeviceRecord,
)

log = logging.getLogger(__name__)


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
    # how it proves who it is: `certificate` or `password`; None = the deployment's default
    credential: str | None = None


@dataclass(frozen=True)
class StoredCredential:
    """What the registry keeps of a new device's credential (never the password itself)."""

    kind: str  # certificate or password
    password_hash: str  # SHA-256 of its MQTT password (devices/passwords.py)
    broker_hash: str | None = None  # the password file's line, for a password device


def stored_credential(
    new: NewDevice, password: str, certificates: DeviceCertificates | None
) -> StoredCredential:
    """Which credential the device gets here; CredentialUnavailable if the deployment has none
    of the kind asked for."""
    if certificates is None:
        if new.credential == "certificate":
            raise CredentialUnavailable("device certificates are not in use on this deployment")
        return StoredCredential("password", hash_password(password))
    kind = new.credential or "certificate"
    if kind == "certificate":
        return StoredCredential(kind, hash_password(password))
    if not certificates.passwords_enabled:
        raise CredentialUnavailable(
            "devices with passwords are not enabled here (TELECARE_BROKER_PASSWORD_FILE)"
        )
    return StoredCredential(kind, hash_password(password), mosquitto_hash(password))


@dataclass(frozen=True)
class Registered:
    device: DeviceRecord
    mqtt_password: str
    certificate: IssuedCertificate | None = None


async def register_device(
    pool: Pool,
    new: NewDevice,
    *,
    actor: audit.Actor = audit.SYSTEM,
    credentials: BrokerCredentials | None = None,
    certificates: DeviceCertificates | None = None,
    csr_pem: str | None = None,
) -> Registered:
    """Register one device; its broker client or certificate is made before the commit (or
    nothing is). With `certificates`, the certificate is signed from `csr_pem`, or with a key
    generated here when there is none (CertificateRequestInvalid: nothing registered)."""
    password = new_password()
    stored = stored_credential(new, password, certificates)
    certificate = None
    async with pool.connection() as conn, conn.transaction():
        if not await insert_devices(conn, [(new, stored)], actor=actor):
            raise DeviceAlreadyRegistered(new.device_id)
        refused = await (credentials or NoBrokerCredentials()).add(
            [DeviceSecret(new.device_id, password)]
        )
        if refused:
            raise BrokerUnavailable(f"broker refused device {new.device_id!r}: {refused}")
        if stored.kind == "certificate" and certificates is not None:
            certificate = await certificates.issue(
                conn, new.device_id, csr_pem=csr_pem, actor=actor
            )
        elif csr_pem is not None:
            raise CredentialUnavailable("a device with a password has no certificate request")
        if stored.broker_hash is not None:
            await touch_password_file(conn)
        device = await fetch_device(conn, new.device_id)
    if stored.broker_hash is not None and certificates is not None:
        certificates.changed()
    log.info("device registered device=%s actor=%s", new.device_id, actor.name)
    return Registered(device, password, certificate)


_INSERT = """
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s) AS r(
        device_id text, serial text, model text, manufacturer text, resident_ref text,
        address text, postcode text, postcode_district text, heartbeat_interval_s integer,
        heartbeat_grace_s integer, migration_stage text, mqtt_password_hash text,
        credential_kind text, mqtt_password_broker text)
), inserted AS (
    INSERT INTO devices (device_id, serial, model, manufacturer, resident_ref, address,
        postcode, postcode_district, heartbeat_interval_s, heartbeat_grace_s, migration_stage,
        mqtt_password_hash, credential_kind, mqtt_password_broker)
    SELECT device_id, serial, model, manufacturer, resident_ref, address, postcode,
        postcode_district, heartbeat_interval_s, heartbeat_grace_s, migration_stage,
        mqtt_password_hash, credential_kind, mqtt_password_broker
    FROM given
    ON CONFLICT (device_id) DO NOTHING
    RETURNING device_id, migration_stage
), history AS (
    INSERT INTO migration_history (device_id, actor, to_stage, note)
    SELECT device_id, %(actor)s, migration_stage, 'registered' FROM inserted
)
SELECT device_id, migration_stage FROM inserted
"""


async def insert_devices(
    conn: psycopg.AsyncConnection,
    devices: Sequence[tuple[NewDevice, StoredCredential]],
    *,
    actor: audit.Actor,
) -> set[str]:
    """Insert (device, credential) pairs whose id is not registered yet, each with its
    first migration-history entry, audit entry and change notification, in a few statements
    whatever the count. The ids inserted; the others were already registered.

    Call inside a transaction: its rollback undoes all of it.
    """
    rows = [
        {
            **asdict(new),
            "postcode_district": postcode_district(new.postcode) if new.postcode else None,
            "mqtt_password_hash": stored.password_hash,
            "credential_kind": stored.kind,
            "mqtt_password_broker": stored.broker_hash,
        }
        for new, stored in devices
    ]
    cur = await conn.execute(_INSERT, {"rows": Jsonb(rows), "actor": actor.name})
    inserted: dict[str, str] = dict(await cur.fetchall())
    await audit.record_many(
        conn,
        actor,
        action="device.register",
        target_type="device",
        entries=[(device_id, {"migration_stage": stage}) for device_id, stage in inserted.items()],
    )
    await conn.execute(
        "SELECT pg_notify(%s, device_id) FROM unnest(%s::text[]) AS device_id",
        [DEVICE_CHANGED, list(inserted)],
    )
    return set(inserted)


async def touch_password_file(conn: psycopg.AsyncConnection) -> None:
    """The password file needs rewriting: seen by the publisher once this commits."""
    await conn.execute("UPDATE broker_file_changes SET changed_at = now() WHERE name = 'passwords'")


_ONE = sql.SQL("SELECT {} FROM {} WHERE d.device_id = %s").format(
    DEVICE_COLUMNS, sql.SQL(DEVICE_FROM)
)
_LOCK_ONE = _ONE + sql.SQL(" FOR UPDATE OF d")


async def get_device(pool: Pool, device_id: str) -> DeviceRecord:
    async with pool.connection() as conn:
        return await fetch_device(conn, device_id)


async def fetch_device(
    conn: psycopg.AsyncConnection, device_id: str, *, for_update: bool = False
) -> DeviceRecord:
    """One device with its live status; `for_update` locks its row until the transaction ends."""
    async with conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(_LOCK_ONE if for_update else _ONE, [device_id])
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

    `overdue_only`: past the docs/PROTOCOL.md section 3 deadline, whatever the status label says
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
    where = sql.SQL(" AND ".join(conditions))  # fixed fragments, values passed as parameters
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY d.device_id LIMIT %(limit)s").format(
        DEVICE_COLUMNS, sql.SQL(DEVICE_FROM), where
    )
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(DeviceRecord)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
