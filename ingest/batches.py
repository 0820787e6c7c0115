"""Telemetry written in batches from a bounded buffer: the consumer never waits for the database.

`add()` is synchronous and O(1). A batch is written when `batch_size` rows wait or the oldest
is `flush_ms` old; it takes every row waiting, up to `batch_max`, so a writer that fell behind
(or an event loop that is busy) catches up with fewer, larger transactions; `writers` batches
may be written at once, each on its own connection (one database session is what one batch
after another can use: BENCHMARKS.md). A failed write
keeps its batch and retries with back-off (each attempt with a deadline, so a hung database
cannot hold it forever), while new rows keep arriving in the buffer. The buffer is bounded:
when it is full the oldest rows are dropped and counted, so a long outage costs the oldest
telemetry, never the process. Rows the database refuses as data
(`DataError`, `IntegrityError`) are retried one by one and those still refused are dropped and
counted, so one bad row never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Generic, TypeVar

import psycopg

from telecare.core.metrics import Metrics
from telecare.core.retry import until_written
from telecare.db.pool import Pool

log = logging.getLogger(__name__)

Row = TypeVar("Row")
REFUSED = (psycopg.DataError, psycopg.IntegrityError)


class BatchWriter(ABC, Generic[Row]):
    """Subclasses say how to write a batch (`_write`) and name what they write (`what`)."""

    what: str = "rows"

    def __init__(
        self,
        pool: Pool,
        metrics: Metrics,
        *,
        batch_size: int,
        batch_max: int | None = None,
        flush_ms: int,
        buffer_max: int,
        attempt_timeout_s: float,
        writers: int = 1,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._batch_size = batch_size
        self._batch_max = max(batch_size, batch_max or batch_size)
        self._flush_s = flush_ms / 1000
        self._buffer_max = buffer_max
        self._attempt_timeout_s = attempt_timeout_s
        self._writers = writers
        self._rows: deque[Row] = deque()
        self._oldest_at = 0.0
        self._pending = asyncio.Event()
        self._full = asyncio.Event()
        metrics.write_buffered.labels(self.what).set_function(self.__len__)  # read when scraped
        self._dropped = metrics.write_dropped.labels(self.what, "buffer_full")
        self.written = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Row) -> None:
        if not self._rows:
            self._oldest_at = time.monotonic()
            self._pending.set()
        if len(self._rows) >= self._buffer_max:
            self._rows.popleft()
            self._dropped.inc()
        self._rows.append(row)
        if len(self._rows) >= self._batch_size:
            self._full.set()

    async def run(self) -> None:
        """`writers` loops, each writing one batch at a time on a connection of its own."""
        async with asyncio.TaskGroup() as tg:
            for n in range(self._writers):
                tg.create_task(self._write_batches(), name=f"ingest.{self.what}_writer[{n}]")

    async def _write_batches(self) -> None:
        while True:
            await self._pending.wait()
            wait_s = self._oldest_at + self._flush_s - time.monotonic()
            if wait_s > 0 and not self._full.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=wait_s)
            batch = self._take()
            if not batch:
                continue  # another writer took them
            try:
                await until_written(
                    functools.partial(self._write, batch),
                    what=self.what,
                    context=f"rows={len(batch)}",
                    metrics=self._metrics,
                    attempt_timeout_s=self._attempt_timeout_s,
                    give_up_on=REFUSED,
                )
            except REFUSED as exc:
                log.warning("batch refused what=%s rows=%d error=%s", self.what, len(batch), exc)
                await self._write_one_by_one(batch)
            except asyncio.CancelledError:
                self._rows.extendleft(reversed(batch))  # for flush() to write at shutdown
                raise

    async def flush(self, *, within_s: float) -> None:
        """Write what is buffered (at shutdown); what is left after `within_s` is counted lost."""
        batch: list[Row] = []
        try:
            async with asyncio.timeout(within_s):
                while self._rows:
                    batch = self._take()
                    await self._write(batch)
                    batch = []
        except (TimeoutError, psycopg.Error) as exc:
            left = len(batch) + len(self._rows)
            self._metrics.write_dropped.labels(self.what, "shutdown").inc(left)
            log.error("rows not written at shutdown what=%s rows=%d error=%s", self.what, left, exc)

    def _take(self) -> list[Row]:
        count = min(self._batch_max, len(self._rows))
        batch = [self._rows.popleft() for _ in range(count)]
        self._full.clear()
        if self._rows:
            self._oldest_at = time.monotonic()
            if len(self._rows) >= self._batch_size:
                self._full.set()
        else:
            self._pending.clear()
        return batch

    async def _write_one_by_one(self, batch: list[Row]) -> None:
        refused = 0
        for row in batch:
            try:
                await until_written(
                    functools.partial(self._write, [row]),
                    what=self.what,
                    context="rows=1",
                    metrics=self._metrics,
                    attempt_timeout_s=self._attempt_timeout_s,
                    give_up_on=REFUSED,
                )
            except REFUSED as exc:
                refused += 1
                log.error("row refused by the database what=%s error=%s", self.what, exc)
        self._metrics.write_dropped.labels(self.what, "refused").inc(refused)

    @abstractmethod
    async def _write(self, batch: list[Row]) -> None:
        """Write the whole batch in one transaction."""
