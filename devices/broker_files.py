"""What the production broker reads from the backend, kept in step with the registry.

Two files: the device revocation list (`crlfile`) and, where devices without a client
certificate are let in, the password file (`password_file`). Changes are committed in the
database first (devices/certificates.py, devices/registry.py); this task makes them bite. It
looks every few seconds (and at once when poked after such a commit) whether either changed,
and if so, or when the revocation list it wrote is getting old, it:

1. builds the files from the database and writes them atomically: the revocation list from the
   revoked certificates not yet expired (a decommissioned device's only for
   TELECARE_DEVICE_CRL_DECOMMISSIONED_DAYS: the broker checks the whole list at every
   handshake, so the list is kept to what must be refused), the password file from the
   active password devices (one index-only read, devices/password_file.py);
2. runs TELECARE_BROKER_RELOAD_COMMAND once for both: Mosquitto rereads both files on SIGHUP
   without dropping a connection; from then on a revoked certificate's handshake fails and a
   removed or replaced password is refused. The reload also checks every connected password
   client against the new file and closes those whose password is gone;
3. closes the open connections of devices whose certificate was revoked since its last pass,
   by connecting with the device's client id on the service listener (the broker ends the older
   session). A certificate replaced by a re-issue is not cut off here: the device's own
   reconnection with its new certificate takes its session over, and until then it stays
   monitored.

Password changes are batched: the password file is rewritten at most every `PASSWORD_BATCH_S`
however many devices change, so its cost (the whole file, read again by the broker) is paid per
batch, not per device (docs/REGISTRY.md has the figures). Revocations are never held back.

The revocation list is rewritten at least twice a day and is valid for a week: OpenSSL refuses
every client certificate once the list's next-update time has passed, so a publisher that
stopped would lock the whole fleet out. A failed pass is logged, counted by step, shown on
/healthz (`device_crl`) and tried again after a bounded back-off; the database keeps what it
must publish, so nothing is lost whatever process publishes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress
from telecare.core.settings import Settings
from telecare.db.pool import Pool
from telecare.devices import password_file
from telecare.devices.broker_revocation import disconnect_device, reload_broker
from telecare.devices.device_ca import DeviceCA, write_atomically

log = logging.getLogger(__name__)

LOOK_EVERY_S = 5.0
PASSWORD_BATCH_S = 10.0
VALID_FOR = timedelta(days=7)
REWRITE_AFTER_S = 12 * 3600.0
RELOAD_TIMEOUT_S = 30.0
DISCONNECT_TIMEOUT_S = 10.0
# On its first pass a publisher does not know what an earlier one cut off: it closes the
# connections of devices revoked this recently (closing one twice is harmless).
FIRST_PASS_LOOKBACK = timedelta(minutes=10)
# Re-issues replace a certificate the device itself stops using; every other reason cuts off.
_CUT_OFF_REASONS = ["decommissioned", "compromised", "withdrawn"]

_CRL_MARK = "SELECT count(*), max(revoked_at) FROM device_certificates WHERE revoked_at IS NOT NULL"
_LISTED = (
    "SELECT serial, revoked_at FROM device_certificates"
    " WHERE revoked_at IS NOT NULL AND not_after > %(now)s"
    " AND NOT (revocation_reason = 'decommissioned' AND revoked_at < %(decommissioned_since)s)"
    " ORDER BY serial"
)
_REVOKED_SINCE = (
    "SELECT DISTINCT device_id FROM device_certificates"
    " WHERE revoked_at > %s AND revocation_reason = ANY(%s)"
)
_PASSWORDS_MARK = "SELECT changed_at FROM broker_file_changes WHERE name = 'passwords'"
_PASSWORDS = (
    "SELECT device_id, mqtt_password_broker FROM devices"
    " WHERE credential_kind = 'password' AND decommissioned_at IS NULL"
    " AND mqtt_password_broker IS NOT NULL ORDER BY device_id"
)

CrlMark = tuple[int, datetime | None]


@dataclass(frozen=True)
class Published:
    revoked: int  # certificates on the revocation list written (0: not rewritten)
    password_devices: int | None  # lines of the password file written (None: not rewritten)
    devices_cut_off: int


class BrokerFilesPublisher:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        metrics: Metrics,
        ca: DeviceCA,
        *,
        broker: BrokerAddress | None = None,
    ) -> None:
        assert settings.device_crl_file, "Settings require TELECARE_DEVICE_CRL_FILE"
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._ca = ca
        self._crl_file = settings.device_crl_file
        self._password_file = settings.broker_password_file
        # the service listener, as this process's own identity (telecare.api)
        self._broker = broker or settings.broker()
        self._wanted = asyncio.Event()
        self._crl_mark: CrlMark | None = None
        self._passwords_mark: datetime | None = None
        self._crl_written_at = 0.0
        self._passwords_written_at = -PASSWORD_BATCH_S
        self._cut_off_after: datetime | None = None
        self._recheck: set[str] = set()
        self._healthy = False

    def poke(self) -> None:
        """A change the broker must see was committed: publish now, not at the next look."""
        self._wanted.set()

    def healthy(self) -> bool:
        """The last pass published (or found nothing to publish)."""
        return self._healthy

    async def run(self) -> None:
        failures = 0
        while True:
            self._wanted.clear()  # before the pass: a poke during it brings the next at once
            try:
                await self.publish_if_needed()
            except Exception as exc:
                failures += 1
                self._healthy = False
                log.error("broker files not published: %s", exc)
                wait_s = LOOK_EVERY_S + backoff_delay(failures, cap_s=300)
            else:
                failures = 0
                wait_s = LOOK_EVERY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), wait_s)

    async def publish_if_needed(self) -> Published | None:
        """One pass: publish what changed (and the revocation list when it is getting old)."""
        now = datetime.now(UTC)
        async with self._pool.connection() as conn:
            crl_mark = await _crl_mark(conn)
            passwords_mark = await self._due_passwords_mark(conn)
            crl_due = (
                crl_mark != self._crl_mark
                or time.monotonic() - self._crl_written_at > REWRITE_AFTER_S
            )
            if not crl_due and passwords_mark is None and not self._recheck:
                self._healthy = True
                return None
            decommissioned_since = now - timedelta(
                days=self._settings.device_crl_decommissioned_days
            )
            listed = await _listed(conn, now, decommissioned_since) if crl_due else None
            passwords = await _passwords(conn) if passwords_mark is not None else None
            since = self._cut_off_after or now - FIRST_PASS_LOOKBACK
            cur = await conn.execute(_REVOKED_SINCE, [since, _CUT_OFF_REASONS])
            revoked_devices = {device_id for (device_id,) in await cur.fetchall()}
        await self._write_and_reload(listed, passwords, now)
        # those cut off last pass are cut off again, in case one reconnected before the
        # broker had reloaded the list
        cut_off = await self._cut_off(revoked_devices | self._recheck)
        self._recheck = revoked_devices
        if listed is not None:
            self._crl_mark = crl_mark
        if passwords_mark is not None:
            self._passwords_mark = passwords_mark
        self._cut_off_after = crl_mark[1] or self._cut_off_after
        self._healthy = True
        return Published(
            len(listed) if listed is not None else 0,
            len(passwords) if passwords is not None else None,
            cut_off,
        )

    async def _due_passwords_mark(self, conn: AsyncConnection) -> datetime | None:
        """The change mark to publish the password file for, when it is due; else None."""
        if self._password_file is None:
            return None
        cur = await conn.execute(_PASSWORDS_MARK)
        row = await cur.fetchone()
        mark: datetime | None = row[0] if row else None
        if mark is None or mark == self._passwords_mark:
            return None
        if time.monotonic() - self._passwords_written_at < PASSWORD_BATCH_S:
            return None  # batched: the next pass takes it with whatever else changed
        return mark

    async def _write_and_reload(
        self,
        listed: list[tuple[int, datetime]] | None,
        passwords: list[tuple[str, str]] | None,
        now: datetime,
    ) -> None:
        if listed is None and passwords is None:
            return
        try:
            if listed is not None:
                crl = await asyncio.to_thread(
                    self._ca.revocation_list, listed, now=now, valid_for=VALID_FOR
                )
                await asyncio.to_thread(write_atomically, self._crl_file, crl)
            if passwords is not None and self._password_file is not None:
                text = await asyncio.to_thread(password_file.render, passwords)
                await asyncio.to_thread(write_atomically, self._password_file, text)
        except Exception:
            self._metrics.crl_publish_failures.labels("write").inc()
            raise
        try:
            await reload_broker(self._settings.broker_reload_command, RELOAD_TIMEOUT_S)
        except Exception:
            self._metrics.crl_publish_failures.labels("reload").inc()
            raise
        if listed is not None:
            self._crl_written_at = time.monotonic()
            self._metrics.crl_published.set(time.time())
            self._metrics.crl_entries.set(len(listed))
            log.info("device revocation list published revoked=%d", len(listed))
        if passwords is not None:
            self._passwords_written_at = time.monotonic()
            log.info("device password file published devices=%d", len(passwords))

    async def _cut_off(self, device_ids: set[str]) -> int:
        done = 0
        for device_id in sorted(device_ids):
            try:
                await disconnect_device(self._broker, device_id, DISCONNECT_TIMEOUT_S)
            except Exception:
                self._metrics.crl_publish_failures.labels("disconnect").inc()
                raise
            done += 1
            self._metrics.devices_cut_off.inc()
            log.info("revoked device disconnected device=%s", device_id)
        return done


async def _crl_mark(conn: AsyncConnection) -> CrlMark:
    cur = await conn.execute(_CRL_MARK)
    row = await cur.fetchone()
    assert row is not None
    return (row[0], row[1])


async def _listed(
    conn: AsyncConnection, now: datetime, decommissioned_since: datetime
) -> list[tuple[int, datetime]]:
    cur = await conn.execute(_LISTED, {"now": now, "decommissioned_since": decommissioned_since})
    return [(serial, at) for serial, at in await cur.fetchall()]


async def _passwords(conn: AsyncConnection) -> list[tuple[str, str]]:
    cur = await conn.execute(_PASSWORDS)
    return [(device_id, hashed) for device_id, hashed in await cur.fetchall()]
