"""Registering many devices at once, each row on its own: a bad row never stops the others.

All rows go into one transaction, each row inside its own savepoint, so a row that fails (its
id already registered, a constraint) leaves nothing behind while the others stay. The broker
clients of the rows that succeeded are then made in batches before the commit; if the broker
does not confirm them all, the whole import rolls back (BrokerUnavailable) and nothing at all
is registered. A dry run does the same work and rolls back at the end, broker untouched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from core import audit
from core.db import Pool
from devices.credentials import BrokerCredentials, DeviceSecret
from devices.errors import BrokerUnavailable, DeviceAlreadyRegistered
from devices.passwords import hash_password, new_password
from devices.registry import NewDevice, insert_device


@dataclass(frozen=True)
class FieldError:
    field: str | None  # None: the row as a whole
    message: str


@dataclass(frozen=True)
class ImportRow:
    """One data row of the file: the device it describes, or why it could not be read."""

    row: int
    device_id: str | None
    device: NewDevice | None
    errors: list[FieldError] = field(default_factory=list)


@dataclass(frozen=True)
class RowResult:
    row: int
    device_id: str | None
    ok: bool
    errors: list[FieldError]
    mqtt_password: str | None = None  # only for rows registered for real


@dataclass(frozen=True)
class ImportResult:
    dry_run: bool
    rows: list[RowResult]

    @property
    def registered(self) -> int:
        return sum(r.ok for r in self.rows)


def _repeated_ids(rows: Sequence[ImportRow]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.device_id:
            seen[row.device_id].append(row.row)
    return {device_id: found for device_id, found in seen.items() if len(found) > 1}


async def import_devices(
    pool: Pool,
    rows: Sequence[ImportRow],
    *,
    dry_run: bool,
    actor: audit.Actor,
    credentials: BrokerCredentials,
) -> ImportResult:
    repeated = _repeated_ids(rows)
    results: list[RowResult] = []
    secrets: list[DeviceSecret] = []
    async with pool.connection() as conn, conn.transaction(force_rollback=dry_run):
        for row in rows:
            errors = list(row.errors)
            if row.device_id in repeated:
                others = ", ".join(str(n) for n in repeated[row.device_id] if n != row.row)
                errors.append(
                    FieldError("device_id", f"the same device_id is also in row {others}")
                )
            if errors or row.device is None:
                results.append(RowResult(row.row, row.device_id, ok=False, errors=errors))
                continue
            password = new_password()
            error = await _insert_one(conn, row.device, password, actor)
            if error is not None:
                results.append(RowResult(row.row, row.device_id, ok=False, errors=[error]))
                continue
            secrets.append(DeviceSecret(row.device.device_id, password))
            shown = None if dry_run else password
            results.append(RowResult(row.row, row.device_id, True, [], shown))
        if not dry_run and secrets:
            await _add_to_broker(credentials, secrets)
        if secrets:
            await audit.record(
                conn,
                actor,
                action="device.import",
                target_type="device",
                target_id=None,
                details={"rows": len(rows), "registered": len(secrets), "dry_run": dry_run},
            )
    return ImportResult(dry_run, results)


async def _insert_one(
    conn: psycopg.AsyncConnection, device: NewDevice, password: str, actor: audit.Actor
) -> FieldError | None:
    """Insert in a savepoint; the reason when the row cannot be registered (nothing is left)."""
    try:
        async with conn.transaction():
            await insert_device(conn, device, password_hash=hash_password(password), actor=actor)
    except DeviceAlreadyRegistered as exc:
        return FieldError("device_id", str(exc))
    except psycopg.errors.IntegrityError as exc:
        return FieldError(None, f"refused by the database: {exc.diag.message_primary}")
    return None


async def _add_to_broker(credentials: BrokerCredentials, secrets: list[DeviceSecret]) -> None:
    refused = await credentials.add(secrets)
    if refused:
        sample = "; ".join(f"{d}: {why}" for d, why in list(refused.items())[:5])
        raise BrokerUnavailable(
            f"the broker refused {len(refused)} of {len(secrets)} devices ({sample});"
            " nothing was imported"
        )
