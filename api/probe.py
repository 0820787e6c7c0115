"""A database query that answers its callers within a deadline, even while the database hangs.

A database that accepts connections but answers nothing (paused, partitioned) holds a query
until psycopg gives up cancelling it, about 10 s after the caller stopped waiting, and holds a
pool connection meanwhile. /healthz and /metrics are asked every few seconds by monitoring: each
ask would pile up one more stuck request. A probe runs at most one query at a time, in the
background; callers wait for it at most `within_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()  # nobody may be waiting any more: not an unhandled error


class Probe(Generic[T]):
    def __init__(self, query: Callable[[], Awaitable[T]], *, name: str, within_s: float) -> None:
        self._query = query
        self._name = name
        self._within_s = within_s
        self._task: asyncio.Task[T] | None = None

    async def ask(self) -> T:
        """The query's answer; TimeoutError after `within_s`, or the query's own error."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"api.probe[{self._name}]")
            self._task.add_done_callback(_retrieve)
        return await asyncio.wait_for(asyncio.shield(self._task), self._within_s)

    async def _run(self) -> T:
        return await self._query()
