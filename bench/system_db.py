"""The system benchmark's database: a registry the size of the UK's telecare fleet, a queue for
the operators' screens, and a month of heartbeat history to query.

Device ids are those the load publishers use (`simulators.load`: `{prefix}-{n:06d}`). Every
device reports every INTERVAL_S; its grace is GRACE_S, so no device the load keeps beating
falls due during the run, whatever share of the fleet one phase reaches. SILENT devices were
last heard a day ago: the alert engine raises their `heartbeat_missed` alerts as it starts, and
they are the open queue that the operators' requests read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

PREFIX = "bench"
INTERVAL_S = 120  # 1.8 M devices at a 2-minute interval: 15,000 heartbeats/s
GRACE_S = 3600
DISTRICTS = 2500  # about as many as the UK has; the silent devices never make an area outage
NETWORKS = ("4g", "wifi", "ethernet")
_COPY_CHUNK = 50_000


def device_id(n: int) -> str:
    return f"{PREFIX}-{n:06d}"


def insert_fleet(
    url: str,
    devices: int,
    silent: int,
    say: Callable[[str], None],
    *,
    interval_s: int = INTERVAL_S,
    grace_s: int | None = GRACE_S,  # None: the registry's default grace
) -> None:
    """`devices` registered devices, the last `silent` of them silent for a day."""
    started = time.perf_counter()
    grace = r"\N" if grace_s is None else str(grace_s)
    now = datetime.now(UTC)
    registered = (now - timedelta(days=30)).isoformat()
    heard_now = now.isoformat()
    heard_long_ago = (now - timedelta(days=1)).isoformat()
    first_silent = devices - silent
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY devices (device_id, heartbeat_interval_s, heartbeat_grace_s, postcode,"
            " postcode_district, model, migration_stage, stage_changed_at, registered_at,"
            " mqtt_password_hash) FROM STDIN"
        ) as copy:
            for start in range(0, devices, _COPY_CHUNK):
                lines = []
                for n in range(start, min(start + _COPY_CHUNK, devices)):
                    district = f"Z{n % DISTRICTS:04d}"
                    lines.append(
                        f"{device_id(n)}\t{interval_s}\t{grace}\t{district} 1AA\t{district}"
                        f"\tbench-hub\tcomplete\t{registered}\t{registered}\tx\n"
                    )
                copy.write("".join(lines))
        say(f"devices: {devices:,} rows in {time.perf_counter() - started:.0f} s")
        with conn.cursor().copy(
            "COPY device_state (device_id, last_heartbeat_at, power, battery_pct, signal_dbm,"
            " network) FROM STDIN"
        ) as copy:
            for start in range(0, devices, _COPY_CHUNK):
                lines = [
                    f"{device_id(n)}\t{heard_now if n < first_silent else heard_long_ago}"
                    f"\tmains\t90\t-70\t{NETWORKS[n % 3]}\n"
                    for n in range(start, min(start + _COPY_CHUNK, devices))
                ]
                copy.write("".join(lines))
        conn.commit()
        say(f"device_state: {devices:,} rows, {time.perf_counter() - started:.0f} s so far")
        conn.autocommit = True  # VACUUM runs outside a transaction
        conn.execute("VACUUM ANALYZE devices")
        conn.execute("VACUUM ANALYZE device_state")
    say(f"registry ready in {time.perf_counter() - started:.0f} s")


def heartbeat_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM heartbeats").fetchone()
    return int(row[0]) if row else 0


def set_chunk_interval(url: str, interval: str) -> None:
    """Chunks of `interval` for heartbeats from now on (TimescaleDB)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT set_chunk_time_interval('heartbeats', %s::interval)", [interval])
