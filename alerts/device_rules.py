"""docs/ALERTS.md for the devices this process owns: every device alert, raised on a change only.

`DeviceRules` is synchronous and does no I/O: the engine feeds it heartbeats, status messages,
device snapshots from the database and the clock, and it emits actions (`decisions`) in the
order they must be written. A heartbeat of a healthy device costs a dictionary lookup and a few
attribute writes; everything else happens on the rare change.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telecare.alerts.clock import Clock
from telecare.alerts.deadlines import DeadlineHeap, TrackedDevice
from telecare.alerts.decisions import Emit, Raise, Resolve, ResolveDevice, Update, device_subject
from telecare.alerts.flags import MIGRATING, OFFLINE, ON_BATTERY, OPEN, OVERDUE, RETURNING
from telecare.alerts.rules import AlertRules
from telecare.alerts.types import AlertType
from telecare.protocol.messages import Heartbeat, Peripheral

HBM = AlertType.HEARTBEAT_MISSED
MDO = AlertType.MIGRATION_DROPOUT
CONN = AlertType.CONNECTION_LOST
MAINS = AlertType.MAINS_POWER_LOST
BATTERY = AlertType.BATTERY_LOW
P_LOST = AlertType.PERIPHERAL_LOST
P_BATTERY = AlertType.PERIPHERAL_BATTERY_LOW
FLAP = AlertType.FLAPPING


@dataclass(frozen=True)
class DeviceSnapshot:
    """A device as the database knows it, for (re)tracking it."""

    device_id: str
    window_s: int  # interval + grace
    migrating: bool
    since: datetime  # the later of its last heartbeat and its registration or stage change
    on_battery: bool = False
    offline: bool = False  # its last status was offline and no heartbeat came since
    open_types: frozenset[AlertType] = frozenset()
    # Open in the database, but the device has since shown the condition is over (it sent a
    # heartbeat, or came online, while no engine watched it): resolved at once.
    cleared_types: frozenset[AlertType] = frozenset()
    recent_drops: tuple[datetime, ...] = ()  # silence alerts raised in the flapping window
    # What the database holds of the device's telemetry (its receive times): a message the
    # engine heard meanwhile is applied over the snapshot only if it is newer.
    last_heartbeat_at: datetime | None = None
    connection_at: datetime | None = None


class DeviceRules:
    def __init__(self, rules: AlertRules, clock: Clock, emit: Emit) -> None:
        self._rules = rules
        self._clock = clock
        self._emit = emit
        self.devices: dict[str, TrackedDevice] = {}
        self._deadlines = DeadlineHeap()
        self._drops: dict[str, list[float]] = {}  # drop times within the flapping window
        self._drop_log: deque[tuple[float, str]] = deque()  # to forget old drops
        self._flap_until: dict[str, float] = {}
        self._flap_ends: list[tuple[float, str]] = []
        self._peripheral_lists: dict[tuple[str, AlertType], tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.devices)

    def __contains__(self, device_id: str) -> bool:
        return device_id in self.devices

    # --- the database's view ---

    def track(self, snapshot: DeviceSnapshot) -> None:
        """Start tracking a device, or apply a change of its registration (interval, stage)."""
        since = self._clock.at(snapshot.since)
        device = self.devices.get(snapshot.device_id)
        if device is None:
            self._start(snapshot, since)
            return
        overdue_type = MDO if device.flags & MIGRATING else HBM
        device.window_s = snapshot.window_s
        device.flags = device.flags | MIGRATING if snapshot.migrating else device.flags & ~MIGRATING
        device.anchor = max(device.anchor, since)
        if device.flags & OVERDUE:
            if (MDO if snapshot.migrating else HBM) is overdue_type:
                return
            # The other overdue type applies now: it is raised at the new deadline, and
            # supersedes the open one then.
            device.flags &= ~OVERDUE
        self._deadlines.push(snapshot.device_id, device)

    def _start(self, snapshot: DeviceSnapshot, since: float) -> None:
        device_id = snapshot.device_id
        flags = MIGRATING if snapshot.migrating else 0
        if snapshot.on_battery:
            flags |= ON_BATTERY
        for alert_type in snapshot.open_types | snapshot.cleared_types:
            flags |= OPEN.get(alert_type, 0)
        device = self.devices[device_id] = TrackedDevice(since, snapshot.window_s, flags)
        now = self._clock.now()
        for alert_type in snapshot.cleared_types:
            self._close(device_id, device, alert_type, now, "device")
        if device.flags & (OPEN[HBM] | OPEN[MDO]):
            device.flags |= OVERDUE
        else:
            self._deadlines.push(device_id, device)
        for drop in sorted(snapshot.recent_drops):
            self._record_drop(device_id, self._clock.at(drop))
        if FLAP in snapshot.open_types:
            drops = self._drops.get(device_id)
            last = drops[-1] if drops else now
            self._flap(device_id, last + self._rules.flapping_window_s)
        if snapshot.offline:
            device.flags |= OFFLINE
            if not flags & (OPEN[CONN] | OPEN[FLAP]):
                self._open(device_id, device, CONN, now, {"reason": "offline while unwatched"})
        # Mains is a state, raised on its change: one that changed while no engine watched
        # (down, or a partition changing hands) is raised or resolved now.
        if snapshot.on_battery and not flags & OPEN[MAINS]:
            self._open(device_id, device, MAINS, now, {"reason": "on battery while unwatched"})
        elif not snapshot.on_battery and flags & OPEN[MAINS]:
            self._close(device_id, device, MAINS, now, "device")

    def forget(self, device_id: str, *, resolve: bool) -> None:
        """Stop tracking a device: decommissioned (`resolve`: its alerts end) or handed over."""
        if self.devices.pop(device_id, None) is None:
            return
        self._drops.pop(device_id, None)
        self._flap_until.pop(device_id, None)
        for alert_type in (P_LOST, P_BATTERY):
            self._peripheral_lists.pop((device_id, alert_type), None)
        if resolve:
            self._emit(ResolveDevice(device_id, self._clock.wall(self._clock.now()), "system"))

    # --- telemetry ---

    def heartbeat(self, device_id: str, beat: Heartbeat, *, at: float | None = None) -> bool:
        """Apply a heartbeat received now (or `at`); False if this process does not track it."""
        device = self.devices.get(device_id)
        if device is None:
            return False
        now = self._clock.now()
        device.anchor = now if at is None else max(device.anchor, at)
        if device.flags & RETURNING:
            self._returned(device_id, device, now)
        if beat.power == "battery":
            if not device.flags & ON_BATTERY:
                device.flags |= ON_BATTERY
                self._open(device_id, device, MAINS, now, {"battery_pct": beat.battery_pct})
        elif device.flags & (ON_BATTERY | OPEN[MAINS]):
            device.flags &= ~ON_BATTERY
            self._close(device_id, device, MAINS, now, "device")
        pct = beat.battery_pct
        if pct is not None:
            if pct < self._rules.battery_low_pct:
                self._open(device_id, device, BATTERY, now, {"battery_pct": pct})
            elif pct >= self._rules.battery_ok_pct and device.flags & OPEN[BATTERY]:
                self._close(device_id, device, BATTERY, now, "device")
        if beat.peripherals is not None:
            self._peripherals(device_id, device, beat.peripherals, now)
        return True

    def status(self, device_id: str, state: str, reason: str | None) -> bool:
        device = self.devices.get(device_id)
        if device is None:
            return False
        now = self._clock.now()
        if state == "offline" and not device.flags & OFFLINE:
            device.flags |= OFFLINE
            self._went_down(device_id, device, CONN, now, {"reason": reason})
        elif state == "online" and device.flags & OFFLINE:
            device.flags &= ~OFFLINE
            self._close(device_id, device, CONN, now, "device")
            self._flapping_now(device_id, device)
        return True

    def _returned(self, device_id: str, device: TrackedDevice, now: float) -> None:
        was_overdue = device.flags & OVERDUE
        device.flags &= ~(OVERDUE | OFFLINE)
        for alert_type in (HBM, MDO, CONN):
            self._close(device_id, device, alert_type, now, "device")
        if was_overdue:
            self._deadlines.push(device_id, device)
        self._flapping_now(device_id, device)

    def _peripherals(
        self, device_id: str, device: TrackedDevice, peripherals: Sequence[Peripheral], now: float
    ) -> None:
        rules = self._rules
        lost = tuple(
            sorted(p.id for p in peripherals if p.last_seen_s > rules.peripheral_supervision_s)
        )
        self._listed(device_id, device, P_LOST, lost, bool(lost), not lost, now)
        batteries = [(p.id, p.battery_pct) for p in peripherals if p.battery_pct is not None]
        low = tuple(sorted(i for i, pct in batteries if pct < rules.battery_low_pct))
        ok = all(pct >= rules.battery_ok_pct for _, pct in batteries)
        self._listed(device_id, device, P_BATTERY, low, bool(low), ok, now)

    def _listed(
        self,
        device_id: str,
        device: TrackedDevice,
        alert_type: AlertType,
        ids: tuple[str, ...],
        bad: bool,
        good: bool,
        now: float,
    ) -> None:
        """A peripheral alert: raised when `bad`, resolved when `good`, details name the ids."""
        key = (device_id, alert_type)
        if bad:
            if not device.flags & OPEN[alert_type]:
                self._open(device_id, device, alert_type, now, {"peripherals": list(ids)})
            elif self._peripheral_lists.get(key) != ids:
                self._emit(
                    Update(device_subject(alert_type, device_id), {"peripherals": list(ids)})
                )
            self._peripheral_lists[key] = ids
        elif good and device.flags & OPEN[alert_type]:
            self._close(device_id, device, alert_type, now, "device")
            self._peripheral_lists.pop(key, None)

    # --- the clock ---

    def tick(self, now: float, heard_until: float | None = None) -> float | None:
        """Fire every timer due by `now`; answers when the next one is due (None: none).

        `heard_until`: the feed is proven to have delivered everything sent up to then (the
        canary, protocol/canary.py). A deadline after it is not judged yet: the silence behind
        it may be a feed that stopped, or a backlog not yet read. It stays due, and the answer
        is then a moment not later than `now`, for which the caller asks proof.
        """
        devices = self.devices
        until = now if heard_until is None else min(now, heard_until)
        deferred = []
        for device_id in self._deadlines.due(now, devices):
            device = devices[device_id]
            if device.deadline > until:
                deferred.append(device_id)
            else:
                self._deadline(device_id, device, now)
        for device_id in deferred:
            self._deadlines.push(device_id, devices[device_id])
        ends = self._flap_ends
        while ends and ends[0][0] <= until:
            ends_at, device_id = heapq.heappop(ends)
            if self._flap_until.get(device_id) == ends_at:
                self._flap_end(device_id, now)
        self._forget_old_drops(now)
        nexts = [t for t in (self._deadlines.next_at(), ends[0][0] if ends else None) if t]
        return min(nexts) if nexts else None

    def _deadline(self, device_id: str, device: TrackedDevice, now: float) -> None:
        device.flags |= OVERDUE
        kind, other = (MDO, HBM) if device.flags & MIGRATING else (HBM, MDO)
        details = {"window_s": device.window_s, "silent_since": self._iso(device.anchor)}
        if device.flags & OPEN[other]:
            self._close(device_id, device, other, now, "superseded")
            self._open(device_id, device, kind, now, details)
            return
        self._went_down(device_id, device, kind, now, details)

    # --- flapping ---

    def _went_down(
        self,
        device_id: str,
        device: TrackedDevice,
        kind: AlertType,
        now: float,
        details: dict[str, Any],
    ) -> None:
        """A connection_lost or overdue condition began: a drop, if the device was up."""
        already_down = device.flags & (OVERDUE if kind is CONN else OFFLINE)
        drops = 0 if already_down else self._record_drop(device_id, now)
        if device_id in self._flap_until:
            if drops:
                self._flap(device_id, now + self._rules.flapping_window_s)
                self._emit(
                    Update(
                        device_subject(FLAP, device_id),
                        {"drops": drops, "currently": "down", "last_drop_at": self._iso(now)},
                    )
                )
            return
        if drops >= self._rules.flapping_drops:
            # The drop that opens flapping raises no alert of its own: one row, not a stream.
            details = {
                "drops": drops,
                "window_s": self._rules.flapping_window_s,
                "currently": "down",
                "last_drop_at": self._iso(now),
            }
            self._open(device_id, device, FLAP, now, details)
            self._flap(device_id, now + self._rules.flapping_window_s)
            return
        self._open(device_id, device, kind, now, details)

    def _flapping_now(self, device_id: str, device: TrackedDevice) -> None:
        if device_id in self._flap_until and not device.flags & (OVERDUE | OFFLINE):
            self._emit(Update(device_subject(FLAP, device_id), {"currently": "up"}))

    def _flap(self, device_id: str, until: float) -> None:
        self._flap_until[device_id] = until
        heapq.heappush(self._flap_ends, (until, device_id))

    def _flap_end(self, device_id: str, now: float) -> None:
        """No drop for a whole window: flapping ends; a device still down is alerted now."""
        del self._flap_until[device_id]
        device = self.devices[device_id]
        self._close(device_id, device, FLAP, now, "system")
        if device.flags & OFFLINE:
            self._open(device_id, device, CONN, now, {"reason": "still offline after flapping"})
        if device.flags & OVERDUE:
            kind = MDO if device.flags & MIGRATING else HBM
            details = {"window_s": device.window_s, "silent_since": self._iso(device.anchor)}
            self._open(device_id, device, kind, now, details)

    def _record_drop(self, device_id: str, at: float) -> int:
        cutoff = at - self._rules.flapping_window_s
        drops = [t for t in self._drops.get(device_id, ()) if t > cutoff]
        drops.append(at)
        self._drops[device_id] = drops
        self._drop_log.append((at, device_id))
        return len(drops)

    def _forget_old_drops(self, now: float) -> None:
        cutoff = now - self._rules.flapping_window_s
        log = self._drop_log
        while log and log[0][0] <= cutoff:
            _, device_id = log.popleft()
            drops = self._drops.get(device_id)
            if drops is not None and drops[-1] <= cutoff:
                del self._drops[device_id]

    # --- raising and resolving ---

    def _open(
        self,
        device_id: str,
        device: TrackedDevice,
        alert_type: AlertType,
        now: float,
        details: dict[str, Any],
    ) -> None:
        bit = OPEN[alert_type]
        if device.flags & bit:
            return
        device.flags |= bit
        subject = device_subject(alert_type, device_id)
        at = self._clock.wall(now)
        self._emit(Raise(subject, alert_type, at, device_id=device_id, details=details))

    def _close(
        self, device_id: str, device: TrackedDevice, alert_type: AlertType, now: float, by: str
    ) -> None:
        bit = OPEN[alert_type]
        if not device.flags & bit:
            return
        device.flags &= ~bit
        self._emit(Resolve(device_subject(alert_type, device_id), self._clock.wall(now), by))

    def _iso(self, at: float) -> str:
        return self._clock.wall(at).isoformat()
