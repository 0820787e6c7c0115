"""The device revocation list, kept in step with the registry and in force at the broker.

Revocations are committed in the database first (devices/certificates.py); this task makes
them bite. It looks every few seconds (and at once when poked after a revocation) whether the
revoked set changed, and if so, or when the list it wrote is getting old, it:

1. builds the list from the database (revoked certificates not yet expired) and writes it
   atomically to TELECARE_DEVICE_CRL_FILE;
2. runs TELECARE_BROKER_RELOAD_COMMAND: Mosquitto rereads its `crlfile` on SIGHUP without
   dropping any connection, so from then on a revoked certificate's handshake fails;
3. closes the open connections of devices revoked since its last pass, by connecting with
   the device's client id on the service listener (the broker ends the older session). A
   certificate replaced by a re-issue is not cut off here: the device's own reconnection with
   its new certificate takes its session over, and until then it stays monitored.

The list is rewritten at least twice a day and is valid for a week: OpenSSL refuses every
client certificate once the list's next-update time has passed, so a publisher that stopped
would lock the whole fleet out. A failed pass is logged, counted by step, shown on /healthz
(`device_crl`) and tried again after a bounded back-off; the database keeps what it must
publish, so nothing is lost whatever process publishes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress
from telecare.core.settings import Settings
from telecare.db.pool import Pool
from telecare.devices.broker_revocation import disconnect_device, reload_broker
from telecare.devices.device_ca import DeviceCA, write_atomically

log = logging.getLogger(__name__)

LOOK_EVERY_S = 10.0
VALID_FOR = timedelta(days=7)
REWRITE_AFTER_S = 12 * 3600.0
RELOAD_TIMEOUT_S = 30.0
DISCONNECT_TIMEOUT_S = 10.0
# On its first pass a publisher does not know what an earlier one cut off: it closes the
# connections of devices revoked this recently (closing one twice is harmless).
FIRST_PASS_LOOKBACK = timedelta(minutes=10)
# Re-issues replace a certificate the device itself stops using; every other reason cuts off.
_CUT_OFF_REASONS = ["decommissioned", "compromised", "withdrawn"]

_MARK = "SELECT count(*), max(revoked_at) FROM device_certificates WHERE revoked_at IS NOT NULL"
_LISTED = (
    "SELECT serial, revoked_at FROM device_certificates"
    " WHERE revoked_at IS NOT NULL AND not_after > %s ORDER BY serial"
)
_REVOKED_SINCE = (
    "SELECT DISTINCT device_id FROM device_certificates"
    " WHERE revoked_at > %s AND revocation_reason = ANY(%s)"
)


@dataclass(frozen=True)
class Published:
    revoked: int
    devices_cut_off: int


class CrlPublisher:
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
        # the service listener, as this process's own identity (telecare.api)
        self._broker = broker or settings.broker()
        self._wanted = asyncio.Event()
        self._mark: tuple[int, datetime | None] | None = None
        self._written_at = 0.0
        self._cut_off_after: datetime | None = None
        self._recheck: set[str] = set()
        self._healthy = False

    def poke(self) -> None:
        """A revocation was committed: publish now rather than at the next look."""
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
                log.error("device revocation list not published: %s", exc)
                wait_s = LOOK_EVERY_S + backoff_delay(failures, cap_s=300)
            else:
                failures = 0
                wait_s = LOOK_EVERY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), wait_s)

    async def publish_if_needed(self) -> Published | None:
        """One pass: publish if the revoked set changed or the list is getting old."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_MARK)
            row = await cur.fetchone()
            assert row is not None
            mark: tuple[int, datetime | None] = (row[0], row[1])
            old = time.monotonic() - self._written_at > REWRITE_AFTER_S
            if mark == self._mark and not old and not self._recheck:
                self._healthy = True
                return None
            now = datetime.now(UTC)
            cur = await conn.execute(_LISTED, [now])
            listed = [(serial, at) for serial, at in await cur.fetchall()]
            since = self._cut_off_after or now - FIRST_PASS_LOOKBACK
            cur = await conn.execute(_REVOKED_SINCE, [since, _CUT_OFF_REASONS])
            revoked_devices = {device_id for (device_id,) in await cur.fetchall()}
        if mark != self._mark or old:
            await self._write_and_reload(listed, now)
        # those cut off last pass are cut off again, in case one reconnected before the
        # broker had reloaded the list
        cut_off = await self._cut_off(revoked_devices | self._recheck)
        self._recheck = revoked_devices
        self._mark = mark
        self._cut_off_after = mark[1] or self._cut_off_after
        self._healthy = True
        return Published(len(listed), cut_off)

    async def _write_and_reload(self, listed: list[tuple[int, datetime]], now: datetime) -> None:
        try:
            crl = await asyncio.to_thread(
                self._ca.revocation_list, listed, now=now, valid_for=VALID_FOR
            )
            await asyncio.to_thread(write_atomically, self._crl_file, crl)
        except Exception:
            self._metrics.crl_publish_failures.labels("write").inc()
            raise
        try:
            await reload_broker(self._settings.broker_reload_command, RELOAD_TIMEOUT_S)
        except Exception:
            self._metrics.crl_publish_failures.labels("reload").inc()
            raise
        self._written_at = time.monotonic()
        self._metrics.crl_published.set(time.time())
        log.info("device revocation list published revoked=%d file=%s", len(listed), self._crl_file)

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
