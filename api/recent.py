"""An expensive read shared by everyone who asks: answered from memory while it is younger
than `max_age_s` (counted from when they were done); once older, the first caller counts again
and everyone else is answered the previous figures meanwhile (only the very first call ever
waits for nobody's figures).

For figures a screen shows with their own time (`generated_at`), such as the fleet statistics:
a thousand consoles refreshing cost one query every few seconds, not a thousand, and none of
them but one waits for it.
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
        self._stale_at = 0.0

    def _stale(self) -> bool:
        return time.monotonic() >= self._stale_at

    async def get(self) -> T:
        if self._value is not None and (not self._stale() or self._lock.locked()):
            return self._value  # recent enough, or being counted again right now
        async with self._lock:  # one counting at a time
            if self._value is None or self._stale():
                self._value = await self._compute()
                # From when it was done: a count that takes longer than `max_age_s` (a
                # national fleet) is not started again the moment it ends.
                self._stale_at = time.monotonic() + self._max_age_s
            return self._value
