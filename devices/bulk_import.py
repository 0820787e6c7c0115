"""Registering many devices at once, each row on its own: a bad row never stops the others.

A row is checked whole before anything is written (the caller validates its fields; repeated
ids in the file fail every row that carries them), then every good row is inserted in one
set-based statement that skips ids already registered, so a row either makes a complete device
(row, first history entry, audit entry, notification) or nothing. It is one transaction: the
broker clients of the new devices are made in batches before the commit; if the broker does
not confirm them all, the whole import rolls back (BrokerUnavailable) and nothing is
registered. With device certificates, each new device's certificate is signed (with a key
generated here: the bundle is in the answer only) and recorded in the same transaction. A dry
run does the same checks and rolls back at the end, broker untouched, nothing signed.

No savepoint per row: the only failure the database could still find in a checked row is an
id registered meanwhile, which `ON CONFLICT DO NOTHING` reports without an error. Any other
database error fails the whole import (nothing written). One statement instead of six round
trips per row (docs/REGISTRY.md has the figures).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from telecare.db import audit
from telecare.db.pool import Pool
from telecare.devices.certificates import DeviceCertificates
from telecare.devices.credentials import BrokerCredentials, DeviceSecret
from telecare.devices.device_ca import IssuedCertificate
from telecare.devices.errors import BrokerUnavailable, CredentialUnavailable
from telecare.devices.passwords import new_password
from telecare.devices.registry import (
    NewDevice,
    StoredCredential,
    insert_devices,
    stored_credential,
    touch_password_file,
)


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
    certificate: IssuedCertificate | None = None  # idem, with device certificates


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
    certificates: DeviceCertificates | None = None,
) -> ImportResult:
    repeated = _repeated_ids(rows)
    checked: dict[int, list[FieldError]] = {}
    secrets: dict[int, DeviceSecret] = {}
    candidates: list[tuple[NewDevice, StoredCredential]] = []
    for row in rows:
        errors = list(row.errors)
        if row.device_id in repeated:
            others = ", ".join(str(n) for n in repeated[row.device_id] if n != row.row)
            errors.append(FieldError("device_id", f"the same device_id is also in row {others}"))
        password = new_password()
        stored = None
        if not errors and row.device is not None:
            try:
                stored = stored_credential(row.device, password, certificates)
            except CredentialUnavailable as exc:
                errors.append(FieldError("credential", str(exc)))
        checked[row.row] = errors
        if stored is not None and row.device is not None:
            secrets[row.row] = DeviceSecret(row.device.device_id, password)
            candidates.append((row.device, stored))
    kinds = {new.device_id: stored.kind for new, stored in candidates}
    async with pool.connection() as conn, conn.transaction(force_rollback=dry_run):
        inserted = await insert_devices(conn, candidates, actor=actor) if candidates else set()
        made = [secret for secret in secrets.values() if secret.device_id in inserted]
        issued: dict[str, IssuedCertificate] = {}
        with_password_file = any(
            stored.broker_hash is not None and new.device_id in inserted
            for new, stored in candidates
        )
        if made and not dry_run:
            await _add_to_broker(credentials, made)
            if certificates is not None:
                issued = await certificates.issue_many(
                    conn,
                    [s.device_id for s in made if kinds[s.device_id] == "certificate"],
                    actor=actor,
                )
            if with_password_file:
                await touch_password_file(conn)
        if made:
            await audit.record(
                conn,
                actor,
                action="device.import",
                target_type="device",
                target_id=None,
                details={"rows": len(rows), "registered": len(made), "dry_run": dry_run},
            )
    if with_password_file and not dry_run and certificates is not None:
        certificates.changed()
    return ImportResult(
        dry_run, [_result(r, checked[r.row], secrets, inserted, issued, dry_run) for r in rows]
    )


def _result(
    row: ImportRow,
    errors: list[FieldError],
    secrets: dict[int, DeviceSecret],
    inserted: set[str],
    issued: dict[str, IssuedCertificate],
    dry_run: bool,
) -> RowResult:
    if errors or row.row not in secrets:
        return RowResult(row.row, row.device_id, ok=False, errors=errors)
    secret = secrets[row.row]
    if secret.device_id not in inserted:
        error = FieldError("device_id", f"device {secret.device_id!r} is already registered")
        return RowResult(row.row, row.device_id, ok=False, errors=[error])
    shown = None if dry_run else secret.password
    return RowResult(
        row.row,
        row.device_id,
        ok=True,
        errors=[],
        mqtt_password=shown,
        certificate=issued.get(secret.device_id),
    )


async def _add_to_broker(credentials: BrokerCredentials, secrets: list[DeviceSecret]) -> None:
    refused = await credentials.add(secrets)
    if refused:
        sample = "; ".join(f"{d}: {why}" for d, why in list(refused.items())[:5])
        raise BrokerUnavailable(
            f"the broker refused {len(refused)} of {len(secrets)} devices ({sample});"
            " nothing was imported"
        )
