"""The alert engine: turns the telemetry stream and the clock into alerts, raised once each."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from alerts.deadlines import DeadlineTracker
from alerts.store import Raise, raise_alerts, resolve_alerts
from alerts.types import MIGRATING_STAGES, SILENCE_TYPES, AlertType
from core.db import Pool
from core.metrics import Metrics
from core.notifications import DEVICE_CHANGED, follow
from core.protocol import Heartbeat, Status
from core.retry import until_written
from core.settings import Settings

log = logging.getLogger(__name__)

_MAX_SLEEP_S = 1.0
_BATCH = 1000
_T = TypeVar("_T")

_DEVICES = """
SELECT d.device_id, d.heartbeat_interval_s, d.heartbeat_grace_s, d.migration_stage,
       d.stage_changed_at, s.last_heartbeat_at, d.decommissioned_at
FROM devices d LEFT JOIN device_state s USING (device_id)
"""
_OPEN_SILENCE = """
SELECT device_id, type FROM alerts
WHERE state <> 'resolved' AND device_id IS NOT NULL AND type = ANY(%s)
"""


@dataclass(frozen=True)
class _Resolve:
    device_id: str
    types: tuple[AlertType, ...]
    at: datetime
    by: str


def silence_window_s(interval_s: int, grace_s: int | None) -> int:
    """PROTOCOL section 3: overdue after interval + grace; grace defaults to min(interval, 900)."""
    return interval_s + (grace_s if grace_s is not None else min(interval_s, 900))


class AlertEngine:
    """Implements TelemetryObserver; run() owns its background loops."""

    def __init__(self, settings: Settings, pool: Pool, metrics: Metrics) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._tracker = DeadlineTracker()
        self._migrating: set[str] = set()
        self._connection_lost: set[str] = set()
        # Heartbeats that arrived before the device's registration reached this engine.
        self._early_beats: dict[str, float] = {}
        self._raises: asyncio.Queue[Raise] = asyncio.Queue()
        self._resolves: asyncio.Queue[_Resolve] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.loaded = asyncio.Event()

    @property
    def devices_tracked(self) -> int:
        return len(self._tracker)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                follow(
                    self._settings.database_url,
                    DEVICE_CHANGED,
                    self._refresh_device,
                    on_connected=self._load,
                ),
                name="alerts.device_changes",
            )
            tg.create_task(self._watch_deadlines(), name="alerts.deadlines")
            tg.create_task(self._write_raises(), name="alerts.raise_writer")
            tg.create_task(self._write_resolves(), name="alerts.resolve_writer")

    # --- telemetry, called by the ingest for every valid message (must not block) ---

    def heartbeat_received(self, device_id: str, received_at: datetime, beat: Heartbeat) -> None:
        was_overdue = self._tracker.beat(device_id, time.monotonic())
        if was_overdue is None:
            if len(self._early_beats) > 10_000:
                self._early_beats.clear()
            self._early_beats[device_id] = time.monotonic()
            return
        lost = device_id in self._connection_lost
        if was_overdue or lost:
            self._connection_lost.discard(device_id)
            self._resolves.put_nowait(_Resolve(device_id, SILENCE_TYPES, received_at, "device"))

    def status_received(self, device_id: str, received_at: datetime, status: Status) -> None:
        if device_id not in self._tracker:
            return
        if status.state == "offline" and device_id not in self._connection_lost:
            self._connection_lost.add(device_id)
            details = {"reason": status.reason} if status.reason else {}
            self._raises.put_nowait(
                Raise(device_id, AlertType.CONNECTION_LOST, received_at, details)
            )
        elif status.state == "online" and device_id in self._connection_lost:
            self._connection_lost.discard(device_id)
            self._resolves.put_nowait(
                _Resolve(device_id, (AlertType.CONNECTION_LOST,), received_at, "device")
            )

    # --- state from the database ---

    async def _load(self) -> None:
        """(Re)build every deadline from the database: at start and after a lost LISTEN."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_OPEN_SILENCE, [[t.value for t in SILENCE_TYPES]])
            open_alerts = await cur.fetchall()
            cur = await conn.execute(_DEVICES + " WHERE d.decommissioned_at IS NULL")
            devices = await cur.fetchall()
        overdue = {d for d, t in open_alerts if t != AlertType.CONNECTION_LOST}
        self._connection_lost = {d for d, t in open_alerts if t == AlertType.CONNECTION_LOST}
        for row in devices:
            self._track_row(row, overdue=row[0] in overdue)
        self._metrics.devices_tracked.set(len(self._tracker))
        self._wake.set()
        self.loaded.set()
        log.info("alert engine loaded devices=%d overdue=%d", len(devices), len(overdue))

    async def _refresh_device(self, device_id: str) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_DEVICES + " WHERE d.device_id = %s", [device_id])
            row = await cur.fetchone()
        if row is None or row[6] is not None:
            self._forget(device_id)
            return
        self._track_row(row, overdue=self._tracker.is_overdue(device_id))
        early = self._early_beats.pop(device_id, None)
        if early is not None:
            self._tracker.beat(device_id, early)
        self._metrics.devices_tracked.set(len(self._tracker))
        self._wake.set()

    def _track_row(self, row: tuple[object, ...] | Sequence[object], *, overdue: bool) -> None:
        device_id, interval_s, grace_s, stage, stage_changed_at, last_heartbeat_at, _ = row
        assert isinstance(device_id, str) and isinstance(interval_s, int)
        assert isinstance(stage_changed_at, datetime)
        assert grace_s is None or isinstance(grace_s, int)
        window_s = silence_window_s(interval_s, grace_s)
        since = stage_changed_at
        if isinstance(last_heartbeat_at, datetime) and last_heartbeat_at > since:
            since = last_heartbeat_at
        remaining_s = since.timestamp() + window_s - time.time()
        self._tracker.track(
            device_id,
            deadline=time.monotonic() + remaining_s,
            window_s=window_s,
            overdue=overdue,
        )
        if stage in MIGRATING_STAGES:
            self._migrating.add(device_id)
        else:
            self._migrating.discard(device_id)

    def _forget(self, device_id: str) -> None:
        if device_id in self._tracker:
            self._tracker.forget(device_id)
            self._migrating.discard(device_id)
            self._connection_lost.discard(device_id)
            every_type = tuple(AlertType)
            self._resolves.put_nowait(
                _Resolve(device_id, every_type, datetime.now(UTC), "decommissioned")
            )
            self._metrics.devices_tracked.set(len(self._tracker))

    # --- loops ---

    async def _watch_deadlines(self) -> None:
        await self.loaded.wait()
        while True:
            now = time.monotonic()
            for device_id in self._tracker.pop_overdue(now):
                kind = (
                    AlertType.MIGRATION_DROPOUT
                    if device_id in self._migrating
                    else AlertType.HEARTBEAT_MISSED
                )
                self._raises.put_nowait(Raise(device_id, kind, datetime.now(UTC)))
            next_at = self._tracker.next_deadline()
            sleep_s = _MAX_SLEEP_S if next_at is None else min(_MAX_SLEEP_S, next_at - now)
            self._wake.clear()
            if sleep_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep_s)

    async def _write_raises(self) -> None:
        while True:
            batch = await _drain(self._raises)
            changed = await until_written(
                functools.partial(raise_alerts, self._pool, batch),
                what="alert_raise",
                context=f"alerts={len(batch)}",
                metrics=self._metrics,
            )
            for alert in changed:
                self._metrics.alerts_raised.labels(alert.type.value).inc()
                log.info(
                    "alert raised id=%d device=%s type=%s",
                    alert.alert_id,
                    alert.device_id,
                    alert.type.value,
                )

    async def _write_resolves(self) -> None:
        while True:
            first = await self._resolves.get()
            changed = await until_written(
                functools.partial(
                    resolve_alerts,
                    self._pool,
                    device_ids=[first.device_id],
                    types=first.types,
                    at=first.at,
                    by=first.by,
                ),
                what="alert_resolve",
                context=f"device={first.device_id}",
                metrics=self._metrics,
            )
            for alert in changed:
                self._metrics.alerts_resolved.labels(alert.type.value).inc()
                log.info(
                    "alert resolved id=%d device=%s type=%s by=%s",
                    alert.alert_id,
                    alert.device_id,
                    alert.type.value,
                    first.by,
                )


async def _drain(queue: asyncio.Queue[_T]) -> list[_T]:
    items = [await queue.get()]
    while not queue.empty() and len(items) < _BATCH:
        items.append(queue.get_nowait())
    return items
