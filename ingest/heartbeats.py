"""Heartbeats are written in batches: one COPY, then two statements inside the database.

The batch is copied into a temporary table of the writing session, from which one INSERT adds
it to the `heartbeats` hypertable and one upsert moves each device's newest heartbeat into
`device_state`. The rows cross the wire and are formatted once, by a binary COPY (passing the
latest state as arrays as well cost as much of the ingest's time as the COPY itself, and a
text COPY formats a row four times slower: BENCHMARKS.md).
"""

from __future__ import annotations

import json
import sys
import time
import weakref
from datetime import datetime
from typing import NamedTuple

from psycopg import AsyncConnection

from telecare.ingest.batches import BatchWriter
from telecare.protocol.messages import Heartbeat

# ON COMMIT DELETE ROWS: empty again after each batch; the table lives as long as the session.
# `peripherals` is JSON text here, cast on the way into `heartbeats`.
_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS heartbeat_batch (
    received_at timestamptz, device_id text, msg_id text, device_ts timestamptz, seq bigint,
    interval_s integer, power text, battery_pct smallint, signal_dbm smallint, network text,
    firmware text, peripherals text
) ON COMMIT DELETE ROWS
"""
# COPY's binary format: psycopg formats a row four times faster than in the text format.
_COPY = "COPY heartbeat_batch FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [
    "timestamptz", "text", "text", "timestamptz", "int8", "int4", "text", "int2", "int2", "text",
    "text", "text",
]  # fmt: skip
_INSERT = """
INSERT INTO heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s, power,
                        battery_pct, signal_dbm, network, firmware, peripherals)
SELECT received_at, device_id, msg_id, device_ts, seq, interval_s, power, battery_pct,
       signal_dbm, network, firmware, peripherals::jsonb
FROM heartbeat_batch
"""
_UPSERT_STATE = """
INSERT INTO device_state AS s (device_id, last_heartbeat_at, last_msg_id, last_seq, power,
                               battery_pct, signal_dbm, network, firmware, peripherals)
SELECT DISTINCT ON (device_id) device_id, received_at, msg_id, seq, power, battery_pct,
       signal_dbm, network, firmware, peripherals::jsonb
FROM heartbeat_batch
ORDER BY device_id, received_at DESC
ON CONFLICT (device_id) DO UPDATE SET
    last_heartbeat_at = excluded.last_heartbeat_at, last_msg_id = excluded.last_msg_id,
    last_seq = excluded.last_seq, power = excluded.power, battery_pct = excluded.battery_pct,
    signal_dbm = excluded.signal_dbm, network = excluded.network,
    firmware = coalesce(excluded.firmware, s.firmware),
    peripherals = coalesce(excluded.peripherals, s.peripherals)
WHERE s.last_heartbeat_at IS NULL OR excluded.last_heartbeat_at >= s.last_heartbeat_at
"""


class HeartbeatRow(NamedTuple):
    """One heartbeat as COPY writes it: a plain tuple, a fraction of the pydantic model's size,
    so a full buffer stays small (BENCHMARKS.md)."""

    received_at: datetime
    device_id: str
    msg_id: str
    device_ts: datetime
    seq: int
    interval_s: int
    power: str
    battery_pct: int | None
    signal_dbm: int | None
    network: str
    firmware: str | None
    peripherals: str | None  # JSON text

    @classmethod
    def of(cls, device_id: str, received_at: datetime, beat: Heartbeat) -> HeartbeatRow:
        peripherals = (
            None
            if beat.peripherals is None
            else json.dumps([p.model_dump() for p in beat.peripherals])
        )
        return cls(
            received_at,
            sys.intern(device_id),
            beat.msg_id,
            beat.ts,
            beat.seq,
            beat.interval_s,
            beat.power,  # a Literal: pydantic gives back the one shared string
            beat.battery_pct,
            beat.signal_dbm,
            beat.network,
            None if beat.firmware is None else sys.intern(beat.firmware),
            peripherals,
        )


class HeartbeatWriter(BatchWriter[HeartbeatRow]):
    """Each batch in one transaction: COPY to the session's staging table, then into
    `heartbeats` and, per device, the newest into `device_state`."""

    what = "heartbeats"

    async def _write(self, batch: list[HeartbeatRow]) -> None:
        started = time.perf_counter()
        async with self._pool.connection(timeout=self._attempt_timeout_s) as conn:
            await _ensure_staging(conn)
            async with conn.transaction():
                async with conn.cursor().copy(_COPY) as copy:
                    copy.set_types(_COPY_TYPES)
                    for row in batch:
                        await copy.write_row(row)
                await conn.execute(_INSERT)
                await conn.execute(_UPSERT_STATE)
        self.written += len(batch)
        self._metrics.heartbeat_batch_size.observe(len(batch))
        self._metrics.heartbeat_flush_seconds.observe(time.perf_counter() - started)


_STAGED: weakref.WeakSet[AsyncConnection] = weakref.WeakSet()  # sessions with the table


async def _ensure_staging(conn: AsyncConnection) -> None:
    if conn not in _STAGED:
        await conn.execute(_STAGING)
        _STAGED.add(conn)
