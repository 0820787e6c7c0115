"""A full heartbeat buffer drops its oldest rows and counts them, so a database that stays away
costs the oldest telemetry and never the process's memory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from telecare.core.metrics import Metrics
from telecare.ingest.heartbeats import HeartbeatRow, HeartbeatWriter
from telecare.protocol.decode import decode
from telecare.protocol.messages import Heartbeat, MessageKind
from tests.support import heartbeat


def heartbeat_row(device_id: str, msg_id: str) -> HeartbeatRow:
    """A row as the ingest queues it for the writer."""
    beat = decode(MessageKind.HEARTBEAT, json.dumps(heartbeat(msg_id)).encode())
    assert isinstance(beat, Heartbeat)
    return HeartbeatRow.of(device_id, datetime.now(UTC), beat)


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
    rows = [heartbeat_row("d-1", f"m{n}") for n in range(1500)]
    for row in rows:
        writer.add(row)
    assert len(writer) == 1000
    assert metrics.write_dropped.labels("heartbeats", "buffer_full")._value.get() == 500
    assert writer._take()[0] is rows[500], "the oldest went first"
