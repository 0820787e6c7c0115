"""A row the database refuses does not hold up its batch; a full buffer drops its oldest rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from telecare.core.metrics import Metrics
from telecare.ingest.heartbeats import HeartbeatRow, HeartbeatWriter
from telecare.protocol.decode import decode
from telecare.protocol.messages import Heartbeat, MessageKind
from telecare.service import Service
from tests.support import Devices, heartbeat, wait_for


def _row(device_id: str, msg_id: str) -> HeartbeatRow:
    beat = decode(MessageKind.HEARTBEAT, json.dumps(heartbeat(msg_id)).encode())
    assert isinstance(beat, Heartbeat)
    return HeartbeatRow.of(device_id, datetime.now(UTC), beat)


async def test_a_refused_row_is_dropped_and_counted_the_others_written(
    service: Service, devices: Devices
) -> None:
    known = [(await devices.register())["device_id"] for _ in range(2)]
    metrics = Metrics()
    writer = HeartbeatWriter(
        service.pool, metrics, batch_size=10, flush_ms=10, buffer_max=1000, attempt_timeout_s=10
    )
    stranger = f"never-registered-{uuid.uuid4().hex[:6]}"  # device_state refers to devices
    for device_id in [known[0], stranger, known[1]]:
        writer.add(_row(device_id, uuid.uuid4().hex))
    task = asyncio.create_task(writer.run(), name="test.writer")
    try:

        async def written() -> bool:
            return writer.written == 2

        await wait_for(written, what="the two good rows written one by one")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    refused = metrics.write_dropped.labels("heartbeats", "refused")._value.get()
    assert refused == 1
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT device_id FROM heartbeats WHERE device_id = ANY(%s) ORDER BY device_id",
            [[*known, stranger]],
        )
        assert [row[0] for row in await cur.fetchall()] == sorted(known)


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    metrics = Metrics()
    writer = HeartbeatWriter(
        None,  # type: ignore[arg-type]  # nothing is written here
        metrics,
        batch_size=500,
        flush_ms=200,
        buffer_max=1000,
        attempt_timeout_s=10,
    )
    rows = [_row("d-1", f"m{n}") for n in range(1500)]
    for row in rows:
        writer.add(row)
    assert len(writer) == 1000
    assert metrics.write_dropped.labels("heartbeats", "buffer_full")._value.get() == 500
    assert writer._take()[0] is rows[500], "the oldest went first"
