"""Connection status messages (retained `online`, Last Will `offline`)."""

from __future__ import annotations

from datetime import datetime

from core.db import Pool
from core.protocol import Status

_UPSERT = """
INSERT INTO device_state AS s (device_id, connection, connection_at, connection_reason)
VALUES (%s, %s, %s, %s)
ON CONFLICT (device_id) DO UPDATE SET
    connection = excluded.connection, connection_at = excluded.connection_at,
    connection_reason = excluded.connection_reason
WHERE s.connection_at IS NULL OR excluded.connection_at >= s.connection_at
"""


async def record_status(pool: Pool, device_id: str, status: Status, received_at: datetime) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO device_status_events (received_at, device_id, state, device_ts, reason)"
            " VALUES (%s, %s, %s, %s, %s)",
            [received_at, device_id, status.state, status.ts, status.reason],
        )
        await conn.execute(_UPSERT, [device_id, status.state, received_at, status.reason])
