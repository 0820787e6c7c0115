"""The benchmark's fleet: device ids, the plan of who falls silent, and bulk inserts."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import psycopg

from telecare.protocol.messages import Heartbeat

INTERVAL_S = 120  # every device: a 2-minute heartbeat interval ...
GRACE_S = 300  # ... and 5 minutes' grace, so the fleet's own deadlines lie beyond the run
WINDOW_S = INTERVAL_S + GRACE_S
DISTRICTS = 2500  # about as many as the UK has: a few silent devices never make an outage
Network = Literal["4g", "wifi", "ethernet"]
NETWORKS: tuple[Network, ...] = ("4g", "wifi", "ethernet")
LEASE_S = 120  # one lease round loads everything; no renewal falls due during the run
COPY_CHUNK = 50_000
ORDER_MAX = 1 << 20  # random picks precomputed for the throughput loop
REGISTERED_AT = datetime(2026, 1, 1, tzinfo=UTC)  # before every last heartbeat

Receive = Callable[[str, datetime, Heartbeat], None]


STARTED = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - STARTED:6.1f} s] {message}", flush=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def device_id_of(n: int) -> str:
    return f"bench-{n:07d}"


def healthy_beats() -> list[Heartbeat]:
    """One heartbeat per bearer: a healthy hub on mains (the common, fast path)."""
    return [
        Heartbeat(
            msg_id="bench",
            ts=datetime.now(UTC),
            seq=1,
            interval_s=INTERVAL_S,
            power="mains",
            battery_pct=90,
            signal_dbm=-70,
            network=network,
        )
        for network in NETWORKS
    ]


@dataclass(frozen=True)
class Fleet:
    size: int
    ids: list[str]  # index n: device n
    silent: dict[str, datetime]  # silent device -> its true deadline (wall clock)
    fleet_order: list[int]  # the beating devices, shuffled: one pass beats each once


def plan_fleet(size: int, silent_count: int, seed: int) -> Fleet:
    rng = random.Random(seed)
    silent = rng.sample(range(size), min(silent_count, size // 2))
    chosen = set(silent)
    order = [n for n in range(size) if n not in chosen]
    rng.shuffle(order)
    ids = [device_id_of(n) for n in range(size)]
    placeholder = {ids[n]: REGISTERED_AT for n in silent}  # deadlines are set at insert time
    return Fleet(size, ids, placeholder, order)


# --- the database ---


async def insert_fleet(conn: psycopg.AsyncConnection, fleet: Fleet) -> None:
    started = time.perf_counter()
    stamp = REGISTERED_AT.isoformat()
    async with conn.cursor().copy(
        "COPY devices (device_id, heartbeat_interval_s, heartbeat_grace_s, postcode,"
        " postcode_district, model, migration_stage, stage_changed_at, registered_at,"
        " mqtt_password_hash) FROM STDIN"
    ) as copy:
        for start in range(0, fleet.size, COPY_CHUNK):
            lines = []
            for n in range(start, min(start + COPY_CHUNK, fleet.size)):
                district = f"Z{n % DISTRICTS:04d}"
                lines.append(
                    f"{fleet.ids[n]}\t{INTERVAL_S}\t{GRACE_S}\t{district} 1AA\t{district}"
                    f"\tbench-hub\tcomplete\t{stamp}\t{stamp}\tx\n"
                )
            await copy.write("".join(lines))
            if (start // COPY_CHUNK) % 4 == 3:
                progress(f"devices {start + COPY_CHUNK:,}/{fleet.size:,}")
    progress(f"devices: {fleet.size:,} rows in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    # The beating devices were last heard during the last interval (spread at 0.1 s steps):
    # their deadlines are >= 300 s away, and the benchmark keeps beating them anyway.
    now = datetime.now(UTC)
    recent = [(now - timedelta(seconds=k / 10)).isoformat() for k in range(INTERVAL_S * 10)]
    async with conn.cursor().copy(
        "COPY device_state (device_id, last_heartbeat_at, power, battery_pct, network) FROM STDIN"
    ) as copy:
        for start in range(0, fleet.size, COPY_CHUNK):
            lines = []
            for n in range(start, min(start + COPY_CHUNK, fleet.size)):
                device_id = fleet.ids[n]
                if device_id in fleet.silent:
                    continue
                heard = recent[n % len(recent)]
                lines.append(f"{device_id}\t{heard}\tmains\t90\t{NETWORKS[n % 3]}\n")
            await copy.write("".join(lines))
            if (start // COPY_CHUNK) % 4 == 3:
                progress(f"device_state {start + COPY_CHUNK:,}/{fleet.size:,}")
    await conn.commit()
    progress(f"device_state: in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    await conn.execute("ANALYZE devices")
    await conn.execute("ANALYZE device_state")
    await conn.commit()
    progress(f"ANALYZE in {time.perf_counter() - started:.1f} s")


async def insert_silent(
    conn: psycopg.AsyncConnection, fleet: Fleet, lead_s: float, spread_s: float
) -> None:
    """The silent devices' last heartbeats: deadlines from now + lead_s over spread_s."""
    first = datetime.now(UTC) + timedelta(seconds=lead_s)
    silent = sorted(fleet.silent)
    random.Random(7).shuffle(silent)
    step = spread_s / max(1, len(silent) - 1)
    async with conn.cursor().copy(
        "COPY device_state (device_id, last_heartbeat_at, power, battery_pct, network) FROM STDIN"
    ) as copy:
        for k, device_id in enumerate(silent):
            deadline = first + timedelta(seconds=k * step)
            fleet.silent[device_id] = deadline
            heard = deadline - timedelta(seconds=WINDOW_S)
            network = NETWORKS[int(device_id.removeprefix("bench-")) % 3]
            await copy.write(f"{device_id}\t{heard.isoformat()}\tmains\t90\t{network}\n")
    await conn.commit()


# --- what the benchmark watches while the engine runs ---
