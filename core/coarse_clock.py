"""A wall clock read once per millisecond: for stamping thousands of messages a second."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class CoarseClock:
    """`now()` is `datetime.now(UTC)` to the millisecond, at the cost of a monotonic read:
    messages read in the same millisecond share one received time."""

    def __init__(self) -> None:
        self._tick = -1
        self._now = datetime.now(UTC)

    def now(self) -> datetime:
        tick = time.monotonic_ns() // 1_000_000
        if tick != self._tick:
            self._tick = tick
            self._now = datetime.now(UTC)
        return self._now
