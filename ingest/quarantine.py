"""Bad input is kept, bounded, so a technician can see what a device sent and why it was refused."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from telecare.core.metrics import Metrics
from telecare.db.pool import Pool
from telecare.protocol.decode import Rejection

log = logging.getLogger(__name__)

_PRUNE_EVERY = 500


@dataclass(frozen=True)
class Rejected:
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload: bytes
    received_at: datetime


class Quarantine:
    """Counts each rejection at once and writes it in the background, never blocking ingest."""

    def __init__(self, pool: Pool, metrics: Metrics, *, keep: int, queue_max: int = 10_000) -> None:
        self._pool = pool
        self._metrics = metrics
        self._keep = keep
        self._queue: asyncio.Queue[Rejected] = asyncio.Queue(maxsize=queue_max)
        self._written = 0

    def reject(
        self, *, topic: str, device_id: str | None, reason: str, detail: str, payload: bytes
    ) -> None:
        self._metrics.messages_rejected.labels(reason).inc()
        item = Rejected(topic, device_id, reason, detail[:1000], payload[:8192], datetime.now(UTC))
        log.info("message quarantined topic=%s reason=%s detail=%s", topic, reason, item.detail)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # A flood of garbage must not eat memory: it is still counted in /metrics.
            self._metrics.messages_rejected.labels("quarantine_overflow").inc()

    def refuse(self, topic: str, device_id: str, rejection: Rejection, payload: bytes) -> None:
        """`reject` for a message the decoder refused."""
        self.reject(
            topic=topic,
            device_id=device_id,
            reason=rejection.reason,
            detail=rejection.detail,
            payload=payload,
        )

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[Rejected]) -> None:
        try:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO quarantine (received_at, topic, device_id, reason, detail,"
                    " payload, payload_size) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            r.received_at,
                            r.topic,
                            r.device_id,
                            r.reason,
                            r.detail,
                            r.payload,
                            len(r.payload),
                        )
                        for r in batch
                    ],
                )
                self._written += len(batch)
                if self._written >= _PRUNE_EVERY:
                    self._written = 0
                    await cur.execute(
                        "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - %s",
                        [self._keep],
                    )
        except Exception as exc:
            self._metrics.db_write_failures.labels("quarantine").inc()
            log.warning("quarantine write failed rows=%d error=%s", len(batch), exc)
