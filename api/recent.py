"""An expensive read shared by everyone who asks: computed once however many ask at the same
moment, and answered from memory while it is younger than `max_age_s`.

For figures a screen shows with their own time (`generated_at`), such as the fleet statistics:
a thousand consoles refreshing cost one query every few seconds, not a thousand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(self, compute: Callable[[], Awaitable[T]], *, max_age_s: float) -> None:
        self._compute = compute
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._at = 0.0

    def _fresh(self) -> bool:
        return self._value is not None and time.monotonic() - self._at < self._max_age_s

    async def get(self) -> T:
        if self._fresh():
            assert self._value is not None
            return self._value
        async with self._lock:  # one computation at a time; those who waited take its result
            if not self._fresh():
                started = time.monotonic()
                self._value = await self._compute()
                self._at = started
            assert self._value is not None
            return self._value
