"""One LISTEN per API process, fanned out to every open event stream (GET /events).

The hub follows `telecare_events`, reads each changed alert or alarm once, and hands the
result to every subscriber in event-id order (commit order, migration 0005). The `events`
table is the record and the notifications only make delivery fast: a subscriber that falls
behind, and every subscriber after the LISTEN connection was (re)made, is told to catch up
from the table, so nothing is lost in either case.

It also counts the changes of each kind (`generation`), so that an answer computed from the
alerts (or the alarms) can be reused until one of them changes (api/list_cache.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from telecare.api.change_feed import StreamEvent, with_items
from telecare.core.events import EVENTS_CHANNEL, ChangeEvent, EventKind, parse_event
from telecare.core.metrics import Metrics
from telecare.db.notifications import follow
from telecare.db.pool import Pool

log = logging.getLogger(__name__)

_BATCH = 500  # notifications read together (two queries per batch)
_SUBSCRIBER_BACKLOG = 2000  # events a slow client may have waiting before it catches up


class Signal(Enum):
    CATCH_UP = "catch_up"  # read from the table what follows the last event sent
    CLOSED = "closed"  # the server is stopping: end the stream


class Subscription:
    """What one event stream has been handed and not yet sent."""

    def __init__(self) -> None:
        self._events: deque[StreamEvent] = deque()
        self._catch_up = False
        self._closed = False
        self._wake = asyncio.Event()

    def offer(self, events: list[StreamEvent]) -> bool:
        """Hand over `events`; False when the client is too far behind and must catch up."""
        if self._catch_up or self._closed:
            return True  # the table will answer
        if len(self._events) + len(events) > _SUBSCRIBER_BACKLOG:
            self.catch_up()
            return False
        self._events.extend(events)
        self._wake.set()
        return True

    def catch_up(self) -> None:
        self._events.clear()
        self._catch_up = True
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next(self, timeout_s: float) -> StreamEvent | Signal | None:
        """The next event or signal; None when nothing came within `timeout_s`."""
        if not (self._events or self._catch_up or self._closed):
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self._closed:
            return Signal.CLOSED
        if self._catch_up:
            self._catch_up = False
            return Signal.CATCH_UP
        return self._events.popleft()


@dataclass(frozen=True, slots=True)
class _Reconnected:
    """Notifications may have been missed while there was no LISTEN connection."""


class EventHub:
    """run() owns the LISTEN connection and the reader; close() ends every stream."""

    def __init__(self, database_url: str, pool: Pool, metrics: Metrics) -> None:
        self._database_url = database_url
        self._pool = pool
        self._metrics = metrics
        self._subscribers: set[Subscription] = set()
        self._incoming: asyncio.Queue[ChangeEvent | _Reconnected] = asyncio.Queue()
        self._closed = False
        self._generations: dict[EventKind, int] = {"alert": 0, "alarm": 0}
        self.listening = asyncio.Event()

    def generation(self, kind: EventKind) -> int | None:
        """How many `kind` changes were heard of; None while they may not be heard of."""
        return self._generations[kind] if self.listening.is_set() else None

    def changed(self, kind: EventKind) -> None:
        """This process changed an item of `kind` (before its notification comes back)."""
        self._generations[kind] += 1

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        if self._closed:
            subscription.close()
        self._subscribers.add(subscription)
        self._metrics.event_stream_clients.set(len(self._subscribers))
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            self._metrics.event_stream_clients.set(len(self._subscribers))

    def close(self) -> None:
        """Every open stream ends (server shutdown); later subscriptions end at once."""
        self._closed = True
        for subscription in self._subscribers:
            subscription.close()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                follow(
                    self._database_url,
                    EVENTS_CHANNEL,
                    self._notified,
                    on_connected=self._connected,
                    on_lost=self.listening.clear,
                ),
                name="api.events.listen",
            )
            tg.create_task(self._publish(), name="api.events.publish")

    async def _notified(self, payload: str) -> None:
        event = parse_event(payload)
        self._generations[event.kind] += 1
        self._incoming.put_nowait(event)

    async def _connected(self) -> None:
        for kind in self._generations:  # changes may have been missed meanwhile
            self._generations[kind] += 1
        self._incoming.put_nowait(_Reconnected())
        self.listening.set()

    async def _publish(self) -> None:
        while True:
            batch = [await self._incoming.get()]
            while len(batch) < _BATCH and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            try:
                await self._deliver(batch)
            except Exception as exc:  # e.g. the database is away: the table will answer later
                log.warning("event stream could not read changed items error=%s", exc)
                self._catch_up_all("read_failed")

    async def _deliver(self, batch: list[ChangeEvent | _Reconnected]) -> None:
        run: list[ChangeEvent] = []
        for entry in [*batch, None]:
            if isinstance(entry, ChangeEvent):
                run.append(entry)
                continue
            if run and self._subscribers:  # with no stream open, nothing to read
                events = await with_items(self._pool, run)
                behind = sum(not s.offer(events) for s in self._subscribers)
                if behind:
                    self._metrics.event_stream_catch_ups.labels("slow_client").inc(behind)
            run = []
            if isinstance(entry, _Reconnected):
                self._catch_up_all("listen_connected")

    def _catch_up_all(self, reason: str) -> None:
        if self._subscribers:
            self._metrics.event_stream_catch_ups.labels(reason).inc(len(self._subscribers))
        for subscription in self._subscribers:
            subscription.catch_up()
