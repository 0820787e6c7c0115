"""Connection status messages (retained `online`, Last Will `offline`), written in batches."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from telecare.ingest.batches import BatchWriter

_INSERT_EVENTS = (
    "INSERT INTO device_status_events (received_at, device_id, state, device_ts, reason)"
    " VALUES (%s, %s, %s, %s, %s)"
)
_UPSERT_STATE = """
INSERT INTO device_state AS s (device_id, connection, connection_at, connection_reason)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[])
ON CONFLICT (device_id) DO UPDATE SET
    connection = excluded.connection, connection_at = excluded.connection_at,
    connection_reason = excluded.connection_reason
WHERE s.connection_at IS NULL OR excluded.connection_at >= s.connection_at
"""


class StatusRow(NamedTuple):
    received_at: datetime
    device_id: str
    state: str
    device_ts: datetime | None
    reason: str | None


class StatusWriter(BatchWriter[StatusRow]):
    """Every status as an event row, and each device's latest one in `device_state`."""

    what = "statuses"

    async def _write(self, batch: list[StatusRow]) -> None:
        latest = {row.device_id: row for row in batch}.values()
        async with (
            self._pool.connection(timeout=self._attempt_timeout_s) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.executemany(_INSERT_EVENTS, batch)
            await cur.execute(
                _UPSERT_STATE,
                [
                    [r.device_id for r in latest],
                    [r.state for r in latest],
                    [r.received_at for r in latest],
                    [r.reason for r in latest],
                ],
            )
        self.written += len(batch)
