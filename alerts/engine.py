"""The alert engine: turns the telemetry stream, change events and the clock into alerts.

It composes the synchronous rules (DeviceRules, AlarmWatch, AreaTracker) with what they need
from outside: partition leases (which devices this process owns), the database (state loaded
at start and at a takeover, device changes and alarm/alert change events by LISTEN), and one
writer that commits the rules' actions in order. Telemetry arrives by `heartbeat_received` and
`status_received` (TelemetryObserver), from the ingest in this process or the MQTT feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

import psycopg

from telecare.alerts.areas import CAUSES, AreaTracker
from telecare.alerts.clock import Clock
from telecare.alerts.decisions import Action, Resolve, ResolveDevice
from telecare.alerts.device_rules import DeviceRules
from telecare.alerts.leases import PartitionLeases, partition_of
from telecare.alerts.loader import (
    device as load_device,
)
from telecare.alerts.loader import (
    devices_of,
    open_members,
    open_outages,
    partition_state,
    places,
)
from telecare.alerts.rules import AlertRules
from telecare.alerts.types import AlertType
from telecare.alerts.unhandled_alarms import AlarmWatch
from telecare.alerts.writer import Changed, write_actions
from telecare.core.events import EVENTS_CHANNEL, ChangeEvent, parse_event
from telecare.core.metrics import Metrics
from telecare.core.retry import until_written
from telecare.core.settings import Settings
from telecare.db.notifications import DEVICE_CHANGED, follow
from telecare.db.pool import Pool
from telecare.protocol.messages import Heartbeat, Status

log = logging.getLogger(__name__)

_MAX_SLEEP_S = 1.0
_BATCH = 1000
_EARLY_MAX = 10_000
_LEADER_PARTITION = 0  # its owner also runs the area tracker for the whole fleet
_RELEASE_CHUNK = 5000  # devices looked at between turns of the event loop while releasing


class AlertEngine:
    """Implements TelemetryObserver; run() owns its background loops."""

    def __init__(
        self, settings: Settings, pool: Pool, metrics: Metrics, *, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._clock = clock or Clock()
        self.rules = AlertRules.from_settings(settings)
        self._actions: asyncio.Queue[tuple[float, Action]] = asyncio.Queue()
        self._devices = DeviceRules(self.rules, self._clock, self._emit)
        self._alarms = AlarmWatch(self.rules.alarm_ack_target_s, self._clock, self._emit)
        self._areas: AreaTracker | None = None
        self.leases = PartitionLeases(pool, lease_s=settings.engine_lease_s)
        self._owned: frozenset[int] = frozenset()
        # Heartbeats of owned devices that came before the device reached this engine.
        self._early: dict[str, tuple[float, Heartbeat]] = {}
        self._loading = 0
        self._held_back: list[tuple[str, str]] = []  # notifications that came while loading
        self._wake = asyncio.Event()
        self._listening = {EVENTS_CHANNEL: asyncio.Event(), DEVICE_CHANGED: asyncio.Event()}
        self.loaded = asyncio.Event()

    @property
    def devices_tracked(self) -> int:
        return len(self._devices)

    @property
    def pending_actions(self) -> int:
        return self._actions.qsize()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for channel in self._listening:
                    tg.create_task(
                        follow(
                            self._settings.database_url,
                            channel,
                            functools.partial(self._notified, channel),
                            on_connected=functools.partial(self._listen_connected, channel),
                        ),
                        name=f"alerts.listen[{channel}]",
                    )
                tg.create_task(self._keep_leases(), name="alerts.leases")
                tg.create_task(self._watch_clock(), name="alerts.clock")
                tg.create_task(self._write_actions(), name="alerts.writer")
        finally:
            await asyncio.shield(self._leave())

    async def _leave(self) -> None:
        try:
            await self.leases.leave()
        except Exception as exc:
            log.warning("engine could not release its partitions error=%s", exc)

    # --- telemetry, called for every valid message (must not block) ---

    def heartbeat_received(self, device_id: str, received_at: datetime, beat: Heartbeat) -> None:
        if self._areas is not None:
            self._areas.network_seen(device_id, beat.network)
        if self._devices.heartbeat(device_id, beat):
            return
        if partition_of(device_id) in self._owned:
            if len(self._early) >= _EARLY_MAX:
                self._early.clear()
            self._early[device_id] = (self._clock.now(), beat)

    def status_received(self, device_id: str, received_at: datetime, status: Status) -> None:
        self._devices.status(device_id, status.state, status.reason)

    def _emit(self, action: Action) -> None:
        self._actions.put_nowait((time.perf_counter(), action))

    # --- partitions ---

    async def _keep_leases(self) -> None:
        for event in self._listening.values():
            await event.wait()
        interval_s = self.leases.lease_s / 3
        while True:
            started = time.monotonic()
            try:
                change = await self.leases.renew()
                if change.lost:
                    await self._release(change.lost)
                if change.gained:
                    await self._load(change.gained)
                self._metrics.engine_partitions.set(len(change.held))
            except (psycopg.Error, OSError) as exc:
                log.warning("engine lease round failed error=%s", exc)
            self.loaded.set()
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    async def _release(self, partitions: Collection[int]) -> None:
        """Hand these partitions' devices over: one pass over the tracked devices, letting
        heartbeats in every few thousand (at a million devices the pass takes about a second;
        one pass per partition held the loop for several)."""
        lost = frozenset(partitions)
        self._owned = self._owned - lost
        leaving = []
        for n, device_id in enumerate(list(self._devices.devices)):
            if partition_of(device_id) in lost:
                leaving.append(device_id)
            if n % _RELEASE_CHUNK == _RELEASE_CHUNK - 1:
                await asyncio.sleep(0)
        for device_id in leaving:
            self._devices.forget(device_id, resolve=False)
        self._alarms.forget_devices(set(leaving))
        if _LEADER_PARTITION in lost:
            self._areas = None
        self._metrics.devices_tracked.set(len(self._devices))

    async def _load(self, partitions: Iterable[int]) -> None:
        """Track the devices of newly owned partitions, from the database."""
        gained = sorted(partitions)
        started = time.monotonic()
        self._loading += 1
        # A million new long-lived objects would set off full collections over and over (most
        # of a load's time) and make every later one pause the loop: collect nothing while
        # loading, then freeze what was loaded out of the collector's generations.
        gc.disable()
        try:
            self._owned = self._owned | set(gained)
            count = 0
            async for rows in devices_of(
                self._pool, gained, flapping_window_s=self.rules.flapping_window_s
            ):
                for row in rows:
                    if row.snapshot is not None:
                        self._devices.track(row.snapshot)
                        self._replay_early(row.snapshot.device_id)
                count += len(rows)
                await asyncio.sleep(0)  # let heartbeats in between chunks
            state = await partition_state(self._pool, gained)
            now = datetime.now(UTC)
            for alarm in state.open_alarms:
                self._alarms.opened(
                    alarm.alarm_id,
                    alarm.device_id,
                    alarm.event,
                    alarm.received_at,
                    raised=alarm.raised,
                )
            for subject in state.stale_unhandled:
                self._emit(Resolve(subject, now, "system"))
            for device_id in state.decommissioned:
                self._emit(ResolveDevice(device_id, now, "system"))
            if _LEADER_PARTITION in gained:
                await self._lead()
        finally:
            self._loading -= 1
            gc.enable()
            gc.freeze()
        self._metrics.devices_tracked.set(len(self._devices))
        self._wake.set()
        log.info(
            "alert engine loaded partitions=%d devices=%d tracked=%d alarms_waiting=%d"
            " leader=%s took_s=%.2f",
            len(gained),
            count,
            len(self._devices),
            len(self._alarms),
            self._areas is not None,
            time.monotonic() - started,
        )
        await self._release_held_back()

    async def _lead(self) -> None:
        """Become the area tracker: every device's areas, open member and area alerts."""
        areas = AreaTracker(self.rules, self._emit)
        async for rows in places(self._pool):
            for device_id, district, network in rows:
                areas.place(device_id, district, network)
            await asyncio.sleep(0)
        for outage in await open_outages(self._pool):
            areas.outage_found(outage.area, outage.cause, outage.threshold, outage.members)
        for subject, device_id, alert_type, raised_at in await open_members(
            self._pool, list(CAUSES)
        ):
            areas.member_opened(subject, device_id, alert_type, raised_at.timestamp())
        self._areas = areas

    def _replay_early(self, device_id: str) -> None:
        early = self._early.pop(device_id, None)
        if early is not None:
            self._devices.heartbeat(device_id, early[1], at=early[0])

    # --- notifications: device changes and alarm/alert change events ---

    async def _listen_connected(self, channel: str) -> None:
        first = not self._listening[channel].is_set()
        self._listening[channel].set()
        if not first and self._owned:
            log.info("engine reloading after a lost LISTEN channel=%s", channel)
            await self._load(self._owned)

    async def _notified(self, channel: str, payload: str) -> None:
        if self._loading:
            self._held_back.append((channel, payload))
            return
        if channel == DEVICE_CHANGED:
            await self._device_changed(payload)
        else:
            self._changed(parse_event(payload))

    async def _release_held_back(self) -> None:
        while self._held_back and not self._loading:
            held, self._held_back = self._held_back, []
            for channel, payload in held:
                try:
                    await self._notified(channel, payload)
                except Exception:
                    log.exception("notification handler failed channel=%s", channel)

    async def _device_changed(self, device_id: str) -> None:
        owned = partition_of(device_id) in self._owned
        if not owned and self._areas is None:
            return
        row = await load_device(self._pool, device_id)
        if row is None:
            return
        if row.snapshot is None:  # decommissioned
            if self._areas is not None:
                self._areas.remove(device_id)
            if owned:
                self._devices.forget(device_id, resolve=True)
                self._alarms.forget_device(device_id)
        else:
            if self._areas is not None:
                self._areas.place(device_id, row.district, row.network)
            if owned:
                self._devices.track(row.snapshot)
                self._replay_early(device_id)
        self._metrics.devices_tracked.set(len(self._devices))
        self._wake.set()

    def _changed(self, event: ChangeEvent) -> None:
        if event.device_id is None:
            return
        if event.kind == "alarm":
            if partition_of(event.device_id) not in self._owned:
                return
            if event.state == "open" and event.action == "created" and event.at and event.type:
                self._alarms.opened(
                    event.entity_id, event.device_id, event.type, event.at, raised=False
                )
                self._wake.set()
            elif event.state != "open":
                self._alarms.taken(event.entity_id)
        elif self._areas is not None and event.subject and event.type in CAUSES:
            if event.state == "resolved":
                self._areas.member_closed(event.subject, time.time())
            elif event.at is not None:
                self._areas.member_opened(
                    event.subject, event.device_id, AlertType(event.type), event.at.timestamp()
                )

    # --- the clock and the writer ---

    async def _watch_clock(self) -> None:
        await self.loaded.wait()
        while True:
            self._wake.clear()
            now = self._clock.now()
            due = [self._devices.tick(now), self._alarms.tick(now)]
            if self._areas is not None:
                self._areas.flush_details()
            next_at = min((t for t in due if t is not None), default=now + _MAX_SLEEP_S)
            sleep_s = min(_MAX_SLEEP_S, next_at - now)
            if sleep_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep_s)

    async def _write_actions(self) -> None:
        while True:
            batch = [await self._actions.get()]
            while not self._actions.empty() and len(batch) < _BATCH:
                batch.append(self._actions.get_nowait())
            changed = await until_written(
                functools.partial(write_actions, self._pool, [a for _, a in batch]),
                what="alerts",
                context=f"actions={len(batch)}",
                metrics=self._metrics,
            )
            written = time.perf_counter()
            for emitted, _ in batch:
                self._metrics.alert_write_seconds.observe(written - emitted)
            self._count(changed)

    def _count(self, changed: list[Changed]) -> None:
        for alert in changed:
            if alert.change == "raised":
                self._metrics.alerts_raised.labels(alert.type.value).inc()
            elif alert.change == "resolved":
                self._metrics.alerts_resolved.labels(alert.type.value).inc()
            if alert.change in ("raised", "resolved"):
                log.info(
                    "alert %s id=%d subject=%s type=%s",
                    alert.change,
                    alert.alert_id,
                    alert.subject,
                    alert.type.value,
                )
