"""Device certificates in the registry: issued at registration, re-issued, revoked, listed.

The database row of a certificate (serial, fingerprint, validity, who issued it, whether and
why it was revoked) is written in the same transaction as the change that caused it, with its
audit entry, so a certificate is never in the hands of a device without the registry knowing
it, and a revocation is never lost. What reaches the broker comes after the commit: the
revocation list is rebuilt from these rows (devices/broker_files.py), so a revocation whose
publishing failed is published by the next attempt, whatever process makes it.

Neither the certificate nor a private key is kept: the bundle is shown once, and a lost one is
re-issued (which revokes the old certificate), never recovered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from telecare.core.settings import Settings
from telecare.db import audit
from telecare.devices.device_ca import DeviceCA, IssuedCertificate

log = logging.getLogger(__name__)

RevocationReason = Literal["superseded", "decommissioned", "compromised", "withdrawn"]
CertificateStatus = Literal["active", "revoked", "expired"]


@dataclass(frozen=True)
class CertificateRecord:
    """A certificate as the registry knows it (GET /devices/{id}/credentials)."""

    serial: int
    device_id: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    key_source: str  # csr: the device made its key; generated: the bundle carried it
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    revocation_reason: str | None

    def status(self, now: datetime) -> CertificateStatus:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.not_after <= now else "active"


def serial_hex(serial: int) -> str:
    """The serial as openssl and Mosquitto's logs print it."""
    return f"{serial:X}"


class DeviceCertificates:
    """Issues and revokes device certificates for the registry (TELECARE_BROKER_CREDENTIALS=
    certificates). `changed` is called after a commit that changed what the broker reads from
    the backend (a revocation, a password device), to publish it at once rather than at the
    publisher's next look (devices/broker_files.py)."""

    def __init__(
        self,
        ca: DeviceCA,
        *,
        days: int,
        broker_ca_pem: str | None,
        password_file: str | None = None,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.ca = ca
        self.days = days
        self.broker_ca_pem = broker_ca_pem
        self.password_file = password_file
        self.changed = changed

    @property
    def passwords_enabled(self) -> bool:
        """Whether devices without a certificate may connect with a password here."""
        return self.password_file is not None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, changed: Callable[[], None] = lambda: None
    ) -> DeviceCertificates:
        assert settings.device_ca_cert_file and settings.device_ca_key_file  # Settings checks
        broker_ca = None
        if settings.mqtt_ca_file:
            with open(settings.mqtt_ca_file, encoding="ascii") as f:
                broker_ca = f.read()
        return cls(
            DeviceCA.load(settings.device_ca_cert_file, settings.device_ca_key_file),
            days=settings.device_certificate_days,
            broker_ca_pem=broker_ca,
            password_file=settings.broker_password_file,
            changed=changed,
        )

    async def issue(
        self, conn: AsyncConnection, device_id: str, *, csr_pem: str | None, actor: audit.Actor
    ) -> IssuedCertificate:
        """Sign one certificate (CertificateRequestInvalid for a bad request) and record it."""
        issued = await asyncio.to_thread(
            self.ca.issue, device_id, csr_pem=csr_pem, days=self.days, now=datetime.now(UTC)
        )
        await self._record(conn, [issued], actor)
        return issued

    async def issue_many(
        self, conn: AsyncConnection, device_ids: Sequence[str], *, actor: audit.Actor
    ) -> dict[str, IssuedCertificate]:
        """A certificate with a generated key for each device (a bulk import)."""
        if not device_ids:
            return {}
        issued = await asyncio.to_thread(
            self.ca.issue_many, device_ids, days=self.days, now=datetime.now(UTC)
        )
        await self._record(conn, issued, actor)
        return {certificate.device_id: certificate for certificate in issued}

    async def _record(
        self, conn: AsyncConnection, issued: Sequence[IssuedCertificate], actor: audit.Actor
    ) -> None:
        await conn.execute(
            "INSERT INTO device_certificates (serial, device_id, fingerprint_sha256, not_before,"
            " not_after, key_source, issued_by)"
            " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[],"
            " %s::timestamptz[], %s::text[], %s::text[])",
            [
                [c.serial for c in issued],
                [c.device_id for c in issued],
                [c.fingerprint_sha256 for c in issued],
                [c.not_before for c in issued],
                [c.not_after for c in issued],
                ["generated" if c.private_key_pem else "csr" for c in issued],
                [actor.name] * len(issued),
            ],
        )
        await audit.record_many(
            conn,
            actor,
            action="device.certificate_issue",
            target_type="device",
            entries=[
                (
                    c.device_id,
                    {
                        "serial": serial_hex(c.serial),
                        "not_after": c.not_after.isoformat(),
                        "key_source": "generated" if c.private_key_pem else "csr",
                    },
                )
                for c in issued
            ],
        )


async def revoke_active(
    conn: AsyncConnection,
    device_id: str,
    *,
    actor: audit.Actor,
    reason: RevocationReason,
) -> list[int]:
    """Revoke every certificate of the device still in use; the serials revoked."""
    cur = await conn.execute(
        "UPDATE device_certificates SET revoked_at = now(), revoked_by = %s,"
        " revocation_reason = %s WHERE device_id = %s AND revoked_at IS NULL RETURNING serial",
        [actor.name, reason, device_id],
    )
    serials = [serial for (serial,) in await cur.fetchall()]
    if serials:
        await audit.record(
            conn,
            actor,
            action="device.certificate_revoke",
            target_type="device",
            target_id=device_id,
            details={"serials": [serial_hex(s) for s in serials], "reason": reason},
        )
        log.info(
            "device certificates revoked device=%s serials=%s reason=%s actor=%s",
            device_id,
            ",".join(serial_hex(s) for s in serials),
            reason,
            actor.name,
        )
    return serials


async def device_certificates(conn: AsyncConnection, device_id: str) -> list[CertificateRecord]:
    """Every certificate issued to the device, newest first."""
    async with conn.cursor(row_factory=class_row(CertificateRecord)) as cur:
        await cur.execute(
            "SELECT serial, device_id, fingerprint_sha256, not_before, not_after, key_source,"
            " issued_at, issued_by, revoked_at, revoked_by, revocation_reason"
            " FROM device_certificates WHERE device_id = %s ORDER BY issued_at DESC, serial",
            [device_id],
        )
        return await cur.fetchall()
