"""Monotonic time for deadlines, wall time for what is stored, and one offset between them."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        """Monotonic seconds: what deadlines are measured in."""
        return time.monotonic()

    def wall(self, at: float) -> datetime:
        """The wall-clock time of monotonic moment `at`."""
        return datetime.fromtimestamp(at + self._offset, UTC)

    def at(self, wall: datetime) -> float:
        """The monotonic moment of a stored wall-clock time."""
        return wall.timestamp() - self._offset


class ManualClock(Clock):
    """A clock that moves only when told to: for tests and benchmarks of the engine's rules."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._offset = 1_800_000_000.0 - start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        self._now += seconds
        return self._now
