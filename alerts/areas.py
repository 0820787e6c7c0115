"""docs/ALERTS.md "Mass outages": one `area_outage` alert for many silent devices of one area.

The tracker runs in one engine process (the owner of partition 0) and sees the whole fleet: each
device's areas (postcode district, network bearer of its latest heartbeat) and the opening and
closing of every member alert, from the alerts' change events, whichever process raised them.
Everything is incremental: counting the devices recently gone silent in an area costs O(1) per
member alert, however large the outage.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telecare.alerts.decisions import Emit, Group, Raise, Resolve, Ungroup, Update, area_subject
from telecare.alerts.rules import AlertRules
from telecare.alerts.types import AlertType

CAUSES: dict[AlertType, str] = {
    AlertType.HEARTBEAT_MISSED: "silence",
    AlertType.MIGRATION_DROPOUT: "silence",
    AlertType.CONNECTION_LOST: "silence",
    AlertType.MAINS_POWER_LOST: "mains",
}


@dataclass
class _Outage:
    subject: str
    threshold: int
    members: set[str] = field(default_factory=set)  # devices ever in it while open
    still: int = 0  # members still in the condition


@dataclass
class _AreaCause:
    """One area and one cause: which devices are in the condition, since when."""

    area: str
    cause: str
    down: dict[str, float] = field(default_factory=dict)  # device -> its latest member raise
    recent: deque[tuple[float, str]] = field(default_factory=deque)  # raises in the window
    recent_devices: int = 0  # devices in `down` whose latest raise is in the window
    outage: _Outage | None = None

    def prune(self, cutoff: float) -> None:
        recent = self.recent
        while recent and recent[0][0] < cutoff:
            at, device_id = recent.popleft()
            if self.down.get(device_id) == at:
                self.recent_devices -= 1

    def add(self, device_id: str, at: float, cutoff: float) -> bool:
        """The device has a new member alert raised at `at`; True if it was not down before."""
        before = self.down.get(device_id)
        if before is None or before < cutoff:
            self.recent_devices += 1
        if before is None or at >= before:
            self.down[device_id] = at
            self.recent.append((at, device_id))
        return before is None

    def remove(self, device_id: str, cutoff: float) -> None:
        before = self.down.pop(device_id, None)
        if before is not None and before >= cutoff:
            self.recent_devices -= 1


class AreaTracker:
    def __init__(self, rules: AlertRules, emit: Emit) -> None:
        self._rules = rules
        self._emit = emit
        # device -> (its district's area, the bearer of its latest heartbeat); one shared tuple
        # per pair, so a million devices cost a dictionary entry each
        self._areas: dict[str, tuple[str | None, str | None]] = {}
        self._wheres: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}
        self._tracked: dict[str, int] = {}  # area -> devices in it
        self._states: dict[tuple[str, str], _AreaCause] = {}
        self._open: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # member subject -> ...
        self._by_device: dict[tuple[str, str], set[str]] = {}  # (device, cause) -> subjects
        self._dirty: set[tuple[str, str]] = set()

    @property
    def devices(self) -> int:
        return len(self._areas)

    # --- where devices are ---

    def place(self, device_id: str, district: str | None, network: str | None) -> None:
        """Where a device is: its postcode district and the bearer of its latest heartbeat."""
        where = self._where(f"postcode:{district}" if district else None, network)
        before = self._areas.get(device_id)
        if before == where:
            return
        if before is not None:
            self._count(before, -1)
        self._count(where, 1)
        self._areas[device_id] = where

    def network_seen(self, device_id: str, network: str) -> None:
        """A heartbeat's bearer (the hot path: a lookup and a comparison)."""
        where = self._areas.get(device_id)
        if where is not None and where[1] != network:
            self._count(where, -1)
            where = self._where(where[0], network)
            self._count(where, 1)
            self._areas[device_id] = where

    def remove(self, device_id: str) -> None:
        where = self._areas.pop(device_id, None)
        if where is not None:
            self._count(where, -1)

    def _where(self, area: str | None, network: str | None) -> tuple[str | None, str | None]:
        where = (area, network)
        return self._wheres.setdefault(where, where)

    def _count(self, where: tuple[str | None, str | None], change: int) -> None:
        for area in _area_names(where):
            self._tracked[area] = self._tracked.get(area, 0) + change

    # --- member alerts, from change events ---

    def member_opened(self, subject: str, device_id: str, alert_type: AlertType, at: float) -> None:
        cause = CAUSES.get(alert_type)
        if cause is None or subject in self._open:
            return
        where = self._areas.get(device_id)
        areas = _area_names(where) if where is not None else ()
        self._open[subject] = (device_id, cause, areas)
        self._by_device.setdefault((device_id, cause), set()).add(subject)
        cutoff = at - self._rules.area_window_s
        for area in areas:
            state = self._state(area, cause)
            state.prune(cutoff)
            newly = state.add(device_id, at, cutoff)
            outage = state.outage
            if outage is None:
                self._maybe_raise(state, at)
                continue
            if device_id not in outage.members:
                outage.members.add(device_id)
                outage.still += 1
            elif newly:
                outage.still += 1
            self._emit(Group(outage.subject, (subject,)))
            self._dirty.add((area, cause))

    def member_closed(self, subject: str, at: float) -> None:
        entry = self._open.pop(subject, None)
        if entry is None:
            return
        device_id, cause, areas = entry
        subjects = self._by_device[(device_id, cause)]
        subjects.discard(subject)
        if subjects:
            return  # still in the condition through another alert (e.g. connection_lost)
        del self._by_device[(device_id, cause)]
        cutoff = at - self._rules.area_window_s
        for area in areas:
            state = self._state(area, cause)
            state.prune(cutoff)
            state.remove(device_id, cutoff)
            outage = state.outage
            if outage is None or device_id not in outage.members:
                continue
            outage.still -= 1
            self._dirty.add((area, cause))
            if outage.still < outage.threshold:
                self._emit(Ungroup(outage.subject))
                self._emit(Resolve(outage.subject, _wall(at), "system"))
                state.outage = None

    def outage_found(self, area: str, cause: str, threshold: int, members: set[str]) -> None:
        """An area alert open in the database at start, with the devices grouped under it."""
        state = self._state(area, cause)
        state.outage = _Outage(area_subject(area, cause), threshold, set(members))
        state.outage.still = len(members & state.down.keys())

    def flush_details(self) -> None:
        """Announce the member counts that changed (at most once per tick, not per member)."""
        for key in self._dirty:
            state = self._states[key]
            if state.outage is not None:
                self._emit(Update(state.outage.subject, {"members": state.outage.still}))
        self._dirty.clear()

    def _maybe_raise(self, state: _AreaCause, at: float) -> None:
        tracked = self._tracked.get(state.area, 0)
        threshold = max(
            self._rules.area_min_devices, math.ceil(self._rules.area_min_share * tracked)
        )
        if state.recent_devices < threshold:
            return
        subject = area_subject(state.area, state.cause)
        members = set(state.down)
        state.outage = _Outage(subject, threshold, members, len(members))
        kind, _, name = state.area.partition(":")
        details = {
            "cause": state.cause,
            "area_kind": kind,
            "area_name": name,
            "members": len(members),
            "threshold": threshold,
            "devices_in_area": tracked,
        }
        self._emit(
            Raise(subject, AlertType.AREA_OUTAGE, _wall(at), area=state.area, details=details)
        )
        grouped = tuple(
            s for d in members for s in sorted(self._by_device.get((d, state.cause), ()))
        )
        self._emit(Group(subject, grouped))

    def _state(self, area: str, cause: str) -> _AreaCause:
        state = self._states.get((area, cause))
        if state is None:
            state = self._states[(area, cause)] = _AreaCause(area, cause)
        return state


def _area_names(where: tuple[str | None, str | None]) -> tuple[str, ...]:
    district, network = where
    if network is None:
        return (district,) if district else ()
    return (district, f"network:{network}") if district else (f"network:{network}",)


def _wall(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)
