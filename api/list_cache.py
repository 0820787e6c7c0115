"""The operators' lists (alerts, alarms) answered from memory until one of their items changes.

Every console asks for the same first pages of the queue, and under load computing a page of
a hundred alerts with their histories was most of the API's time (BENCHMARKS.md). An answer is
kept, by kind and query string, with the event hub's count of that kind's changes when its
computation began; it is given again only while that count is unchanged, so an answer is never
older than the last change this process has heard of. While the hub is not listening nothing
is kept or given. Callers who ask while the same answer is being computed wait for it rather
than compute it again (after a change, fifty consoles cost one query, not fifty).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from telecare.api.event_hub import EventHub
from telecare.core.events import EventKind

MAX_ANSWERS = 256


class ListCache:
    def __init__(self, hub: EventHub, max_answers: int = MAX_ANSWERS) -> None:
        self._hub = hub
        self._max_answers = max_answers
        self._answers: OrderedDict[tuple[EventKind, str], tuple[int, bytes]] = OrderedDict()
        self._computing: dict[tuple[EventKind, str], tuple[int, asyncio.Future[bytes]]] = {}

    async def answer(
        self, kind: EventKind, query: str, compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The kept answer to `query`, or `compute()`'s (kept while `kind` does not change)."""
        generation = self._hub.generation(kind)
        if generation is None:
            return await compute()
        key = (kind, query)
        kept = self._answers.get(key)
        if kept is not None and kept[0] == generation:
            self._answers.move_to_end(key)
            return kept[1]
        computing = self._computing.get(key)
        if computing is None or computing[0] != generation:
            computing = (generation, asyncio.ensure_future(compute()))
            self._computing[key] = computing
            computing[1].add_done_callback(lambda _: self._done(key, computing))
        return await asyncio.shield(computing[1])  # one caller's cancellation stops no other

    def _done(
        self, key: tuple[EventKind, str], computing: tuple[int, asyncio.Future[bytes]]
    ) -> None:
        generation, future = computing
        if self._computing.get(key) is computing:
            del self._computing[key]
        if future.cancelled() or future.exception() is not None:
            return
        self._answers[key] = (generation, future.result())
        self._answers.move_to_end(key)
        while len(self._answers) > self._max_answers:
            self._answers.popitem(last=False)
