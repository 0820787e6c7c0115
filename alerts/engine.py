"""The alert engine: turns the telemetry stream, change events and the clock into alerts.

It composes the synchronous rules (DeviceRules, AlarmWatch, AreaTracker) with what they need
from outside: partition leases (which devices this process owns), the database (state loaded
at start and at a takeover, device changes and alarm/alert change events by LISTEN), and one
writer that commits the rules' actions in order. Telemetry arrives by `heartbeat_received` and
`status_received` (TelemetryObserver), from the ingest in this process or the MQTT feed.

Nothing received is lost on the way to the rules (docs/ALERTS.md, *Restarts, broker restarts
and feed outages*): a message for a device not tracked yet (its partition not loaded, or a
device registered a moment ago) is held, the newest heartbeat and the newest status per device,
and applied over the database's state when the device is loaded, if it is newer. No deadline is
judged beyond what the feed's canary (protocol/canary.py) proves was read: after a start, a broker
restart or a frozen broker the held backlog is read first, and a feed that stays dead gives its
partitions up to an engine that hears the devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from telecare.alerts.action_writer import AlertWriter
from telecare.alerts.areas import CAUSES, AreaTracker
from telecare.alerts.clock import Clock
from telecare.alerts.decisions import Action, Resolve, ResolveDevice
from telecare.alerts.device_rules import DeviceRules, DeviceSnapshot
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
from telecare.alerts.writer import Changed
from telecare.core.events import EVENTS_CHANNEL, ChangeEvent, parse_event
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db.notifications import DEVICE_CHANGED, follow
from telecare.db.pool import Pool
from telecare.protocol.canary import Canary
from telecare.protocol.messages import Heartbeat, Status

log = logging.getLogger(__name__)

_MAX_SLEEP_S = 1.0
_DEAF_POLL_S = 0.1  # how soon an engine without a feed sees it come back
_HELD_MAX = 1_000_000  # devices with telemetry held until they are loaded
_LEADER_PARTITION = 0  # its owner also runs the area tracker for the whole fleet
_RELEASE_CHUNK = 5000  # devices looked at between turns of the event loop while releasing


@dataclass(slots=True)
class _Held:
    """The newest heartbeat and status of a device not tracked yet, with their receive times
    (monotonic, and the wall-clock time the ingest stores)."""

    beat: Heartbeat | None = None
    beat_at: float = 0.0
    beat_received: datetime | None = None
    status: Status | None = None
    status_at: float = 0.0
    status_received: datetime | None = None


class AlertEngine:
    """Implements TelemetryObserver; run() owns its background loops.

    `canary`: the proof that the telemetry feed delivers (None: judged on the clock alone, for
    benchmarks that feed the engine directly).
    """

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        metrics: Metrics,
        *,
        clock: Clock | None = None,
        canary: Canary | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._clock = clock or Clock()
        self.rules = AlertRules.from_settings(settings)
        self._devices = DeviceRules(self.rules, self._clock, self._emit)
        self._alarms = AlarmWatch(self.rules.alarm_ack_target_s, self._clock, self._emit)
        self._areas: AreaTracker | None = None
        self.leases = PartitionLeases(pool, lease_s=settings.engine_lease_s)
        self.writer = AlertWriter.from_settings(
            settings, pool, metrics, name=self.leases.owner, on_written=self._count
        )
        self._owned: frozenset[int] = frozenset()
        # Telemetry of devices not tracked yet: of owned partitions, or of every device while
        # this engine holds no partitions (at start, after giving them up).
        self._held: dict[str, _Held] = {}
        self._hold_all = True
        self._canary = canary
        self._reload_wanted = False
        self._loading = 0
        self._held_back: list[tuple[str, str]] = []  # notifications that came while loading
        self._wake = asyncio.Event()
        self._listening = {EVENTS_CHANNEL: asyncio.Event(), DEVICE_CHANGED: asyncio.Event()}
        self.loaded = asyncio.Event()
        if canary is not None:
            canary.on_heard(self._wake.set)

    @property
    def devices_tracked(self) -> int:
        return len(self._devices)

    @property
    def pending_actions(self) -> int:
        return self.writer.pending

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
                tg.create_task(self.writer.run(), name="alerts.writer")
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
        held = self._hold(device_id)
        if held is not None:
            held.beat, held.beat_at, held.beat_received = beat, self._clock.now(), received_at

    def status_received(self, device_id: str, received_at: datetime, status: Status) -> None:
        if self._devices.status(device_id, status.state, status.reason):
            return
        held = self._hold(device_id)
        if held is not None:
            held.status, held.status_at = status, self._clock.now()
            held.status_received = received_at

    def _hold(self, device_id: str) -> _Held | None:
        """Where to keep a message for a device this engine does not track (yet)."""
        held = self._held.get(device_id)
        if held is not None:
            return held
        if not self._hold_all and partition_of(device_id) not in self._owned:
            return None  # another engine's device
        if len(self._held) >= _HELD_MAX:
            del self._held[next(iter(self._held))]
            self._metrics.engine_held_dropped.inc()
        held = self._held[device_id] = _Held()
        return held

    def _apply_held(self, snapshot: DeviceSnapshot) -> None:
        """A device just tracked from the database: what this engine heard of it that the
        database did not have yet, in the order it was received."""
        held = self._held.pop(snapshot.device_id, None)
        if held is None:
            return
        device_id = snapshot.device_id
        stored_beat, stored_status = snapshot.last_heartbeat_at, snapshot.connection_at
        if held.beat is not None and (
            stored_beat is None or (held.beat_received and held.beat_received > stored_beat)
        ):
            self._devices.heartbeat(device_id, held.beat, at=held.beat_at)
        status = held.status
        if status is None or held.status_received is None:
            return
        if stored_status is not None and held.status_received <= stored_status:
            return
        if stored_beat is not None and held.status_received <= stored_beat:
            return  # a heartbeat came after it: the device is up
        if held.beat is not None and held.status_at <= held.beat_at:
            return
        self._devices.status(device_id, status.state, status.reason)

    def _drop_held(self) -> None:
        """Telemetry held for devices of partitions another engine owns."""
        owned = self._owned
        for device_id in [d for d in self._held if partition_of(d) not in owned]:
            del self._held[device_id]

    def _emit(self, action: Action) -> None:
        self.writer.put(action)

    # --- partitions ---

    def feed_deaf_s(self) -> float:
        """How long the feed has not been proven to deliver (0 with no canary)."""
        if self._canary is None:
            return 0.0
        return max(0.0, self._clock.now() - self._canary.heard_until)

    async def _keep_leases(self) -> None:
        for event in self._listening.values():
            await event.wait()
        interval_s = self.leases.lease_s / 3
        release_after_s = self._settings.engine_feed_release_s
        while True:
            started = time.monotonic()
            rejoin_soon = False
            try:
                if self.feed_deaf_s() > release_after_s:
                    await self._give_up()
                    rejoin_soon = True
                elif self._reload_wanted:
                    self._reload_wanted = False
                    await self._give_up()
                    rejoin_soon = True
                else:
                    change = await self.leases.renew()
                    if change.lost:
                        await self._release(change.lost)
                    if change.gained:
                        await self._load(change.gained)
                    self._metrics.engine_partitions.set(len(change.held))
                    self._hold_all = False
                    self._drop_held()
                    self.loaded.set()
            except (psycopg.Error, OSError) as exc:
                log.warning("engine lease round failed error=%s", exc)
            wait_s = _DEAF_POLL_S if rejoin_soon else interval_s
            await asyncio.sleep(max(0.0, wait_s - (time.monotonic() - started)))

    def feed_reconnected(self) -> None:
        """The alerts-only feed (a clean MQTT session) was away: what it missed is in the
        database only, so the partitions are loaded again."""
        self._reload_wanted = True

    async def _give_up(self) -> None:
        """The feed is dead: an engine that cannot hear the devices must not hold them."""
        if not self._owned and not self.leases.held:
            return
        deaf_s = self.feed_deaf_s()
        log.warning(
            "engine gives up its partitions: no telemetry feed partitions=%d deaf_s=%s",
            len(self._owned),
            "never heard" if math.isinf(deaf_s) else f"{deaf_s:.1f}",
        )
        self._hold_all = True
        await self._release(self._owned)
        await self.leases.leave()
        self._metrics.engine_partitions.set(0)

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
        self._owned = self._owned | set(gained)  # their telemetry is held from now on
        # What an ingest received before is in the database once its write batch has landed
        # (this process's, or another's for a partition taken over).
        await asyncio.sleep(2 * self._settings.heartbeat_flush_ms / 1000)
        # A million new long-lived objects would set off full collections over and over (most
        # of a load's time) and make every later one pause the loop: collect nothing while
        # loading, then freeze what was loaded out of the collector's generations.
        gc.disable()
        try:
            count = 0
            async for rows in devices_of(
                self._pool, gained, flapping_window_s=self.rules.flapping_window_s
            ):
                for row in rows:
                    if row.snapshot is not None:
                        self._devices.track(row.snapshot)
                        self._apply_held(row.snapshot)
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
                self._held.pop(device_id, None)
                self._devices.forget(device_id, resolve=True)
                self._alarms.forget_device(device_id)
        else:
            if self._areas is not None:
                self._areas.place(device_id, row.district, row.network)
            if owned:
                self._devices.track(row.snapshot)
                self._apply_held(row.snapshot)
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
        canary = self._canary
        while True:
            self._wake.clear()
            now = self._clock.now()
            heard_until = None if canary is None else canary.heard_until
            device_due = self._devices.tick(now, heard_until)
            due = [self._alarms.tick(now)]
            if device_due is not None and device_due <= now and canary is not None:
                canary.probe(after=device_due)  # judged once the canary proves the feed read
            else:
                due.append(device_due)
            if self._areas is not None:
                self._areas.flush_details()
            next_at = min((t for t in due if t is not None), default=now + _MAX_SLEEP_S)
            sleep_s = min(_MAX_SLEEP_S, next_at - now)
            if sleep_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep_s)

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
