"""A row the database refuses does not hold up its batch: it is dropped and counted, the rest of
the batch written (the bounded buffer is tests/unit/test_batches_buffer.py).
"""

from __future__ import annotations

import asyncio
import uuid

from telecare.core.metrics import Metrics
from telecare.ingest.heartbeats import HeartbeatWriter
from telecare.service import Service
from tests.support import Devices, wait_for
from tests.unit.test_batches_buffer import heartbeat_row


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
        writer.add(heartbeat_row(device_id, uuid.uuid4().hex))
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
