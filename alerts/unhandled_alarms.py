"""`alarm_unhandled`: an alarm no operator has taken within ALARM_ACK_TARGET_S of its receipt.

Fed by the change events of alarms (new, acknowledged, resolved) for the devices this process
owns; technical events never raise it. Synchronous and without I/O, like DeviceRules.
"""

from __future__ import annotations

import heapq
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime

from telecare.alerts.clock import Clock
from telecare.alerts.decisions import Emit, Raise, Resolve, alarm_subject
from telecare.alerts.types import AlertType
from telecare.protocol.messages import TECHNICAL_EVENTS

_TECHNICAL = frozenset(e.value for e in TECHNICAL_EVENTS)


@dataclass(frozen=True, slots=True)
class _Waiting:
    device_id: str
    event: str
    received_at: datetime


class AlarmWatch:
    def __init__(self, target_s: float, clock: Clock, emit: Emit) -> None:
        self._target_s = target_s
        self._clock = clock
        self._emit = emit
        self._waiting: dict[int, _Waiting] = {}
        self._due: list[tuple[float, int]] = []
        self._raised: dict[int, str] = {}  # alarm id -> device id, while alarm_unhandled is open

    def __len__(self) -> int:
        return len(self._waiting) + len(self._raised)

    def opened(
        self, alarm_id: int, device_id: str, event: str, received_at: datetime, *, raised: bool
    ) -> None:
        """An alarm nobody has taken yet (new, or found at start with `raised` if its alert is)."""
        if event in _TECHNICAL or alarm_id in self._waiting or alarm_id in self._raised:
            return
        if raised:
            self._raised[alarm_id] = device_id
            return
        self._waiting[alarm_id] = _Waiting(device_id, event, received_at)
        heapq.heappush(self._due, (self._clock.at(received_at) + self._target_s, alarm_id))

    def taken(self, alarm_id: int) -> None:
        """An operator acknowledged or resolved the alarm."""
        self._waiting.pop(alarm_id, None)
        if self._raised.pop(alarm_id, None) is not None:
            now = self._clock.wall(self._clock.now())
            self._emit(Resolve(alarm_subject(alarm_id), now, "system"))

    def forget_device(self, device_id: str) -> None:
        """The device is decommissioned or handed to another process."""
        self.forget_devices({device_id})

    def forget_devices(self, device_ids: Set[str]) -> None:
        """These devices are handed to another process (one pass, however many)."""
        for alarms in (self._waiting, self._raised):
            for alarm_id in [a for a, w in alarms.items() if _device(w) in device_ids]:
                del alarms[alarm_id]

    def tick(self, now: float) -> float | None:
        due = self._due
        while due and due[0][0] <= now:
            _, alarm_id = heapq.heappop(due)
            waiting = self._waiting.pop(alarm_id, None)
            if waiting is None:
                continue  # taken in time
            self._raised[alarm_id] = waiting.device_id
            details = {
                "alarm_id": alarm_id,
                "event": waiting.event,
                "received_at": waiting.received_at.isoformat(),
                "target_s": self._target_s,
            }
            self._emit(
                Raise(
                    alarm_subject(alarm_id),
                    AlertType.ALARM_UNHANDLED,
                    self._clock.wall(now),
                    device_id=waiting.device_id,
                    details=details,
                )
            )
        return due[0][0] if due else None


def _device(entry: _Waiting | str) -> str:
    return entry.device_id if isinstance(entry, _Waiting) else entry
