"""Heartbeats are written in batches: COPY into the hypertable, one upsert of the latest state."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from core.db import Pool
from core.metrics import Metrics
from core.protocol import Heartbeat
from core.retry import until_written

log = logging.getLogger(__name__)

_COPY = (
    "COPY heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s, power,"
    " battery_pct, signal_dbm, network, firmware, peripherals) FROM STDIN"
)
_UPSERT_STATE = """
INSERT INTO device_state AS s (device_id, last_heartbeat_at, last_msg_id, last_seq, power,
                               battery_pct, signal_dbm, network, firmware, peripherals)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::bigint[], %s::text[],
                     %s::smallint[], %s::smallint[], %s::text[], %s::text[], %s::jsonb[])
ON CONFLICT (device_id) DO UPDATE SET
    last_heartbeat_at = excluded.last_heartbeat_at, last_msg_id = excluded.last_msg_id,
    last_seq = excluded.last_seq, power = excluded.power, battery_pct = excluded.battery_pct,
    signal_dbm = excluded.signal_dbm, network = excluded.network,
    firmware = coalesce(excluded.firmware, s.firmware),
    peripherals = coalesce(excluded.peripherals, s.peripherals)
WHERE s.last_heartbeat_at IS NULL OR excluded.last_heartbeat_at >= s.last_heartbeat_at
"""


@dataclass(frozen=True, slots=True)
class ReceivedHeartbeat:
    device_id: str
    received_at: datetime
    beat: Heartbeat

    def peripherals_json(self) -> str | None:
        if self.beat.peripherals is None:
            return None
        return json.dumps([p.model_dump() for p in self.beat.peripherals])


class HeartbeatWriter:
    """Buffers heartbeats and flushes them when the batch is full or the oldest is 200 ms old.

    A failed write keeps its batch and retries with back-off; the buffer is bounded so a long
    database outage costs the oldest telemetry (counted), never the process.
    """

    def __init__(
        self, pool: Pool, metrics: Metrics, *, batch_size: int, flush_ms: int, buffer_max: int
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000
        self._buffer_max = buffer_max
        self._rows: list[ReceivedHeartbeat] = []
        self._oldest_at = 0.0
        self._pending = asyncio.Event()
        self._full = asyncio.Event()
        self.written = 0

    def add(self, row: ReceivedHeartbeat) -> None:
        if not self._rows:
            self._oldest_at = time.monotonic()
            self._pending.set()
        self._rows.append(row)
        if len(self._rows) >= self._batch_size:
            self._full.set()
        if len(self._rows) > self._buffer_max:
            drop = len(self._rows) - self._buffer_max
            del self._rows[:drop]
            self._metrics.messages_rejected.labels("heartbeat_buffer_overflow").inc(drop)
        self._metrics.heartbeat_buffered.set(len(self._rows))

    async def run(self) -> None:
        while True:
            await self._pending.wait()
            wait_s = self._oldest_at + self._flush_s - time.monotonic()
            if wait_s > 0 and not self._full.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=wait_s)
            batch = self._rows[: self._batch_size]
            del self._rows[: self._batch_size]
            self._full.clear()
            if self._rows:
                self._oldest_at = time.monotonic()
                if len(self._rows) >= self._batch_size:
                    self._full.set()
            else:
                self._pending.clear()
            await until_written(
                functools.partial(self._write, batch),
                what="heartbeats",
                context=f"rows={len(batch)}",
                metrics=self._metrics,
            )
            self._metrics.heartbeat_buffered.set(len(self._rows))

    async def flush(self) -> None:
        """Write everything buffered now (used at shutdown)."""
        while self._rows:
            batch = self._rows[: self._batch_size]
            del self._rows[: self._batch_size]
            await self._write(batch)

    async def _write(self, batch: list[ReceivedHeartbeat]) -> None:
        started = time.perf_counter()
        latest: dict[str, ReceivedHeartbeat] = {}
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.cursor().copy(_COPY) as copy:
                for row in batch:
                    b = row.beat
                    await copy.write_row(
                        (
                            row.received_at,
                            row.device_id,
                            b.msg_id,
                            b.ts,
                            b.seq,
                            b.interval_s,
                            b.power,
                            b.battery_pct,
                            b.signal_dbm,
                            b.network,
                            b.firmware,
                            row.peripherals_json(),
                        )
                    )
                    latest[row.device_id] = row
            rows = list(latest.values())
            await conn.execute(
                _UPSERT_STATE,
                [
                    [r.device_id for r in rows],
                    [r.received_at for r in rows],
                    [r.beat.msg_id for r in rows],
                    [r.beat.seq for r in rows],
                    [r.beat.power for r in rows],
                    [r.beat.battery_pct for r in rows],
                    [r.beat.signal_dbm for r in rows],
                    [r.beat.network for r in rows],
                    [r.beat.firmware for r in rows],
                    [r.peripherals_json() for r in rows],
                ],
            )
        self.written += len(batch)
        self._metrics.heartbeat_batch_size.observe(len(batch))
        self._metrics.heartbeat_flush_seconds.observe(time.perf_counter() - started)
