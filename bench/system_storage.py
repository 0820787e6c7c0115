"""Storage: bytes on disk per heartbeat (rows, TOAST and indexes), and how long one device's
last 30 days take to read back.

Bytes per heartbeat are measured on what the run's ingest wrote (real payloads through the real
path). The month of history is seeded afterwards for HISTORY_DEVICES devices at their 2-minute
interval (21,600 heartbeats each), inserted in time order across those devices, so that one
device's rows lie on different pages as they do when a whole fleet reports at once; the queries
then read them through the API (bucketed, as the console's chart does, and the first page of
raw heartbeats) and in SQL (every raw row of the month).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from bench.system_db import INTERVAL_S, device_id

HISTORY_DEVICES = 100
HISTORY_DAYS = 30
_QUERIES = 10  # devices read back, each once

_SIZE = """
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                 AND EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                             WHERE hypertable_name = 'heartbeats')
            THEN hypertable_size('heartbeats')
            ELSE pg_total_relation_size('heartbeats') END,
       (SELECT count(*) FROM heartbeats)
"""

# One row per device every INTERVAL_S over the month, in time order across the devices.
_SEED = """
INSERT INTO heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s, power,
                        battery_pct, signal_dbm, network, firmware)
SELECT t, d.id, 'h' || s, t, s, %(interval_s)s, 'mains', 90 - s %% 7, -70 - s %% 11, '4g', 'fw-1.0'
FROM generate_series(0, %(beats)s - 1) AS s,
     LATERAL (SELECT now() - make_interval(secs => %(interval_s)s * s) AS t) AS at,
     unnest(%(ids)s::text[]) AS d(id)
ORDER BY s DESC, d.id
"""

_MONTH = """
SELECT received_at, msg_id, seq, power, battery_pct, signal_dbm, network
FROM heartbeats
WHERE device_id = %s AND received_at >= now() - interval '30 days'
ORDER BY received_at DESC
"""


@dataclass(frozen=True)
class Timing:
    what: str
    rows: int
    p50_ms: float
    max_ms: float


@dataclass(frozen=True)
class StorageFigures:
    heartbeats: int
    total_bytes: int
    chunk_interval: str
    queries: list[Timing]

    @property
    def bytes_per_heartbeat(self) -> float:
        return self.total_bytes / max(1, self.heartbeats)


def measure_size(url: str) -> tuple[int, int, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE heartbeats")  # what autovacuum would leave: a visibility map
        row = conn.execute(_SIZE).fetchone()
        interval = conn.execute(
            "SELECT coalesce((SELECT time_interval::text FROM timescaledb_information.dimensions"
            " WHERE hypertable_name = 'heartbeats'), 'plain table')"
        ).fetchone()
    assert row is not None and interval is not None
    return int(row[0]), int(row[1]), str(interval[0])


def seed_history(url: str, say: Callable[[str], None]) -> list[str]:
    ids = [device_id(n) for n in range(HISTORY_DEVICES)]
    beats = HISTORY_DAYS * 86400 // INTERVAL_S
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_SEED, {"interval_s": INTERVAL_S, "beats": beats, "ids": ids})
        conn.execute("VACUUM ANALYZE heartbeats")
    say(
        f"history: {len(ids) * beats:,} heartbeats ({HISTORY_DAYS} days of {len(ids)} devices)"
        f" in {time.perf_counter() - started:.0f} s"
    )
    return ids


def _timing(what: str, rows: list[int], seconds: list[float]) -> Timing:
    return Timing(
        what,
        rows=int(statistics.median(rows)),
        p50_ms=statistics.median(seconds) * 1000,
        max_ms=max(seconds) * 1000,
    )


def query_month(url: str, api_url: str, token: str, ids: list[str]) -> list[Timing]:
    """One device's last 30 days: in SQL, and through the API as the console asks for it."""
    chosen = ids[:: max(1, len(ids) // _QUERIES)][:_QUERIES]
    since = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).isoformat()
    timings = []
    with psycopg.connect(url, autocommit=True) as conn:
        rows, seconds = [], []
        for device in chosen:
            started = time.perf_counter()
            rows.append(len(conn.execute(_MONTH, [device]).fetchall()))
            seconds.append(time.perf_counter() - started)
        timings.append(_timing("SQL: every heartbeat of 30 days", rows, seconds))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{api_url}/api/v1", headers=headers, timeout=60) as client:
        asked: list[tuple[str, dict[str, str]]] = [
            ("API: 30 days in 6 h buckets (a chart)", {"bucket": "6h", "limit": "1000"}),
            ("API: newest 1,000 raw heartbeats of 30 days", {"limit": "1000"}),
        ]
        for what, params in asked:
            rows, seconds = [], []
            for device in reversed(chosen):  # other pages first than the SQL read
                started = time.perf_counter()
                response = client.get(
                    f"/devices/{device}/heartbeats", params={"since": since, **params}
                )
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
                rows.append(len(response.json()["items"]))
            timings.append(_timing(what, rows, seconds))
    return timings
