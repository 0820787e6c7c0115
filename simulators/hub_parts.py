"""The small pieces a virtual hub is made of: who it is, its peripherals, its unacked alarms."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from telecare.protocol.messages import AlarmEvent
from telecare.simulators.scenario import Group


@dataclass(frozen=True)
class HubIdentity:
    """A registered (or attached) device and the scenario group it plays in."""

    device_id: str
    password: str | None
    group: Group
    network: str
    interval_s: int  # as registered: what the backend expects


@dataclass
class PendingAlarm:
    """An alarm the backend has not acknowledged yet: re-sent with the same msg_id until it is."""

    msg_id: str
    event: AlarmEvent
    seq: int
    due: float
    attempts: int = 0


@dataclass
class PeripheralState:
    """A radio peripheral the hub supervises; `lost_since` is set while the hub cannot hear it."""

    id: str
    kind: str
    battery_pct: int | None
    lost_since: float | None = None
    _jitter_s: int = 0

    def __post_init__(self) -> None:
        self._jitter_s = random.randrange(5)  # noqa: S311 - a heard peripheral checked in lately

    def wire(self, now: float) -> dict[str, Any]:
        """The heartbeat's entry for this peripheral; last_seen_s in real seconds."""
        seen_s = self._jitter_s if self.lost_since is None else int(now - self.lost_since)
        return {
            "id": self.id,
            "kind": self.kind,
            "battery_pct": self.battery_pct,
            "last_seen_s": seen_s,
        }
