"""Figures for the alert engine, printed, never asserted (run by hand: `make bench-alerts`).

For each fleet size (tracked devices), on a database of its own (created and dropped), with the
real AlertEngine and no broker or ingest (the benchmark calls the engine as the ingest does):

- the time from starting the engine to `loaded` (LISTEN, lease round, reading every device);
- heartbeats per second through `AlertEngine.heartbeat_received` (the call the ingest makes for
  every heartbeat) for random tracked devices, next to a baseline of the same shape that only
  looks the device up in a dict of the same size and stamps it;
- alert latency after the deadline while the engine absorbs a steady heartbeat load (--rate,
  15,000/s by default: 1.8 M devices at a 2-minute interval). The SILENT devices' last
  heartbeats are stored just before the engine starts so that their deadlines (last heartbeat
  received + interval + grace) fall over --spread-s seconds from --lead-s after the start;
  every other device keeps beating. Decided is `alerts.raised_at` minus the deadline,
  committed the receipt of the alert's NOTIFY (sent on commit) minus the deadline. Exactly one
  heartbeat_missed alert per silent device and none for any other device is expected: misses,
  duplicates and false alerts are counted;
- how long one full garbage collection stops the event loop with the fleet loaded;
- memory per tracked device: RSS growth across the load and, for fleets up to
  --tracemalloc-max, a second load under tracemalloc: what the engine keeps, by allocation site.

    .venv/bin/python -m bench.alerts [--devices 100000 1000000] [--silent 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import linecache
import math
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.alerts_fleet import (
    LEASE_S,
    ORDER_MAX,
    ROOT,
    Fleet,
    healthy_beats,
    insert_fleet,
    insert_silent,
    plan_fleet,
    progress,
    rss_bytes,
)
from bench.alerts_probes import Baseline, NotifyListener, Pauses, beat_steadily, calls_per_s
from telecare.alerts.engine import AlertEngine
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db.migrations.runner import upgrade
from telecare.db.pool import Pool, open_pool
from telecare.protocol.messages import Heartbeat
from tests.conftest import ADMIN_URL

# --- one fleet size ---


@dataclass
class Result:
    devices: int
    tracked: int = 0
    load_s: float = 0.0
    engine_hb_s: float = 0.0
    baseline_hb_s: float = 0.0
    load_rate: float = 0.0  # heartbeats/s achieved during the latency phase
    silent: int = 0
    alerted: int = 0
    missed: int = 0
    duplicates: int = 0
    false_alerts: int = 0
    early: int = 0
    decided_ms: list[float] = field(default_factory=list)
    written_ms: list[float] = field(default_factory=list)
    committed_ms: list[float] = field(default_factory=list)
    unwatched: int = 0  # silent devices overdue before the engine had loaded
    full_gc_ms: float = 0.0  # one full collection with the fleet loaded
    rss_per_device: float = 0.0
    traced_per_device: float = 0.0
    traced_sites: list[tuple[str, float]] = field(default_factory=list)
    pauses: Pauses = field(default_factory=Pauses)


async def _start_engine(
    settings: Settings, pool: Pool, tg: asyncio.TaskGroup
) -> tuple[AlertEngine, asyncio.Task[None], float]:
    engine = AlertEngine(settings, pool, Metrics())
    started = time.perf_counter()
    task = tg.create_task(engine.run(), name="bench.engine")
    await engine.loaded.wait()
    return engine, task, time.perf_counter() - started


async def _stop_engine(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


async def _measure_latency(
    engine: AlertEngine, fleet: Fleet, beats: list[Heartbeat], rate: float, result: Result
) -> None:
    last_deadline = max(fleet.silent.values()).timestamp()
    progress(
        f"latency phase: {len(fleet.silent):,} silent devices, deadlines in"
        f" {min(fleet.silent.values()).timestamp() - time.time():.0f}"
        f"..{last_deadline - time.time():.0f} s, {rate:,.0f} heartbeats/s meanwhile"
    )
    stop = asyncio.Event()
    pauses = result.pauses
    gc.callbacks.append(pauses.gc_callback)
    try:
        async with asyncio.TaskGroup() as tg:
            feeding = tg.create_task(
                beat_steadily(
                    engine.heartbeat_received, fleet.ids, beats, fleet.fleet_order, rate, stop
                )
            )
            tg.create_task(pauses.watch_loop(stop))
            # A few seconds after the last deadline: late alerts, duplicates, false alerts.
            await asyncio.sleep(last_deadline + 5 - time.time())
            stop.set()
    finally:
        gc.callbacks.remove(pauses.gc_callback)
    sent, took = feeding.result()
    result.load_rate = sent / took


async def _check_alerts(
    pool: Pool, fleet: Fleet, listener: NotifyListener, loaded_at: float, result: Result
) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT a.device_id, a.type, a.raised_at, e.at FROM alerts a"
            " LEFT JOIN events e ON e.kind = 'alert' AND e.entity_id = a.id"
            " AND e.action = 'created'"
        )
        rows = await cur.fetchall()
    notified = listener.created_alerts()
    by_device: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for device_id, alert_type, raised_at, written_at in rows:
        if device_id not in fleet.silent or alert_type != "heartbeat_missed":
            result.false_alerts += 1
            continue
        by_device.setdefault(device_id, []).append((raised_at, written_at))
    result.silent = len(fleet.silent)
    for device_id, deadline in fleet.silent.items():
        alerts = by_device.get(device_id, [])
        if not alerts:
            result.missed += 1
            continue
        result.alerted += 1
        result.duplicates += len(alerts) - 1
        raised_at, written_at = min(alerts)
        if deadline.timestamp() < loaded_at:
            result.unwatched += 1  # overdue before the engine had loaded: not a sample
            continue
        decided = (raised_at - deadline).total_seconds() * 1000
        result.early += decided < -0.001  # raised_at is stored to the microsecond
        result.decided_ms.append(decided)
        if written_at is not None:
            result.written_ms.append((written_at - deadline).total_seconds() * 1000)
        receipts = notified.get(device_id)
        if receipts:
            result.committed_ms.append((min(receipts) - deadline.timestamp()) * 1000)


async def _throughput(
    engine: AlertEngine, fleet: Fleet, beats: list[Heartbeat]
) -> tuple[float, float]:
    rng = random.Random(11)
    picks = [rng.choice(fleet.fleet_order) for _ in range(min(ORDER_MAX, fleet.size))]
    ids = [fleet.ids[n] for n in picks]
    chosen_beats = [beats[n % 3] for n in picks]
    baseline = Baseline(fleet.size)
    engine_rates, baseline_rates = [], []
    for _ in range(2):  # interleaved, so drift of the machine hits both alike
        engine_rates.append(calls_per_s(engine.heartbeat_received, ids, chosen_beats, 2.0))
        baseline_rates.append(calls_per_s(baseline.heartbeat_received, ids, chosen_beats, 2.0))
        await asyncio.sleep(0)
    return sum(engine_rates) / 2, sum(baseline_rates) / 2


def _site(traceback: tracemalloc.Traceback, root: str) -> str:
    """The innermost frame in the project, marked when the allocation itself is a library's."""
    innermost = traceback[-1].filename  # frames run from the oldest to the most recent
    for frame in reversed(traceback):
        path = os.path.relpath(frame.filename, root)
        if not path.startswith(("..", ".venv")):
            code = linecache.getline(frame.filename, frame.lineno).strip()[:60]
            if frame.filename == innermost:
                return f"{path}:{frame.lineno}  {code}"
            return f"{path}:{frame.lineno}  {code}  (in {os.path.basename(innermost)})"
    return os.path.relpath(innermost, root)


async def _traced_load(settings: Settings, pool: Pool, size: int, result: Result) -> None:
    """Load the fleet again with tracemalloc on: what the engine keeps, by allocation site."""
    async with pool.connection() as conn:
        # What the ingest would have stored of the heartbeats the benchmark gave the engine:
        # without it the beating devices would be overdue by the database's account.
        await conn.execute(
            "UPDATE device_state s SET last_heartbeat_at = now() WHERE NOT EXISTS"
            " (SELECT 1 FROM alerts a WHERE a.device_id = s.device_id)"
        )
        cur = await conn.execute("SELECT count(*) FROM alerts")
        alerts_before = await cur.fetchone()
    progress("second load with tracemalloc (memory by allocation site)")
    gc.collect()
    # Without the collector meanwhile (a traced load is slow enough): what is kept is the same,
    # the collection before the snapshot frees any cycles.
    gc.disable()
    tracemalloc.start(6)
    try:
        async with asyncio.TaskGroup() as tg:
            engine, task, _ = await _start_engine(settings, pool, tg)
            await _stop_engine(task)  # what it holds stays: `engine` still refers to it
    finally:
        gc.enable()
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    progress("tracemalloc snapshot taken")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM alerts")
        if await cur.fetchone() != alerts_before:
            print("  ! the traced load raised alerts: its figures include them", flush=True)
    result.traced_per_device = traced / size
    sites: dict[str, int] = {}
    for stat in snapshot.statistics("traceback"):
        where = _site(stat.traceback, ROOT)
        sites[where] = sites.get(where, 0) + stat.size
    del engine, snapshot
    top = sorted(sites.items(), key=lambda item: -item[1])[:8]
    result.traced_sites = [(where, size_b / size) for where, size_b in top]


async def _run_size(size: int, args: argparse.Namespace) -> Result:
    result = Result(size)
    print(f"\n{size:,} devices", flush=True)
    progress("creating the database and inserting the fleet")
    name = f"telecare_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    listener = NotifyListener(database_url)
    try:
        fleet = plan_fleet(size, args.silent, seed=size)
        beats = healthy_beats()
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await upgrade(conn)
            await conn.set_autocommit(False)
            await insert_fleet(conn, fleet)
            listener.start()
            listener.ready.wait(10)
            lead_s = args.lead_s if args.lead_s is not None else 15 + size * 30e-6
            await insert_silent(conn, fleet, lead_s, args.spread_s)
        settings = Settings(database_url=database_url, engine_lease_s=LEASE_S)
        async with open_pool(settings) as pool, asyncio.TaskGroup() as tg:
            gc.collect()
            rss_before = rss_bytes()
            engine, task, result.load_s = await _start_engine(settings, pool, tg)
            loaded_at = time.time()
            result.tracked = engine.devices_tracked
            gc.collect()
            started = time.perf_counter()
            gc.collect()
            result.full_gc_ms = (time.perf_counter() - started) * 1000
            grown = rss_bytes() - rss_before
            result.rss_per_device = grown / size
            progress(
                f"engine loaded {result.tracked:,} devices in {result.load_s:.1f} s,"
                f" RSS +{grown / 2**20:.0f} MiB"
            )
            await _measure_latency(engine, fleet, beats, args.rate, result)
            progress("heartbeat throughput: engine and baseline, 2 x 2 s each")
            result.engine_hb_s, result.baseline_hb_s = await _throughput(engine, fleet, beats)
            await _check_alerts(pool, fleet, listener, loaded_at, result)
            progress(f"alerts checked: {result.alerted:,} of {result.silent:,} silent devices")
            await _stop_engine(task)
            del engine
            if size <= args.tracemalloc_max:
                await _traced_load(settings, pool, size, result)
    finally:
        listener.stopping.set()
        if listener.is_alive():
            listener.join(5)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    progress("done")
    _print_details(result)
    return result


# --- output ---


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms3(values: list[float]) -> str:
    return " / ".join(f"{_quantile(values, q):.1f}" for q in (0.5, 0.99, 1.0))


def _print_details(result: Result) -> None:
    pauses = result.pauses
    gc_text = ", ".join(
        f"gen{g}: {pauses.gc_count[g]} x, max {pauses.gc_max_s[g] * 1000:.1f} ms"
        for g in sorted(pauses.gc_count)
    )
    print(f"  write started (events.at) - deadline, p50/p99/max ms: {_ms3(result.written_ms)}")
    print(
        f"  during the latency phase: loop lag max {pauses.loop_lag_max_s * 1000:.1f} ms;"
        f" GC {gc_text or 'none'}"
    )
    print(f"  one full GC with the fleet loaded: {result.full_gc_ms:.0f} ms")
    if result.unwatched:
        print(f"  {result.unwatched} silent devices were overdue before the engine had loaded")
    if result.traced_sites:
        print("  tracemalloc, bytes per device by allocation site:")
        for where, per_device in result.traced_sites:
            print(f"    {per_device:7.1f}  {where}")


def _table(results: list[Result]) -> list[str]:
    rows: list[tuple[str, list[str]]] = [
        ("devices tracked", [f"{r.tracked:,}" for r in results]),
        ("load at start (s)", [f"{r.load_s:.1f}" for r in results]),
        ("heartbeats/s, engine", [f"{r.engine_hb_s:,.0f}" for r in results]),
        ("heartbeats/s, baseline (dict + attr)", [f"{r.baseline_hb_s:,.0f}" for r in results]),
        (
            "engine time per heartbeat / baseline",
            [f"{r.baseline_hb_s / r.engine_hb_s:.1f} x" for r in results],
        ),
        ("heartbeat load in latency phase (/s)", [f"{r.load_rate:,.0f}" for r in results]),
        (
            "silent: alerted / missed / dup / false",
            [f"{r.alerted}/{r.missed}/{r.duplicates}/{r.false_alerts}" for r in results],
        ),
        ("decided: p50 / p99 / max (ms)", [_ms3(r.decided_ms) for r in results]),
        ("committed: p50 / p99 / max (ms)", [_ms3(r.committed_ms) for r in results]),
        ("full GC pause, fleet loaded (ms)", [f"{r.full_gc_ms:.0f}" for r in results]),
        ("memory per device, RSS (bytes)", [f"{r.rss_per_device:.0f}" for r in results]),
        (
            "memory per device, tracemalloc (bytes)",
            [f"{r.traced_per_device:.0f}" if r.traced_per_device else "-" for r in results],
        ),
    ]
    if any(r.early for r in results):
        rows.append(("alerts before the deadline", [str(r.early) for r in results]))
    if any(r.unwatched for r in results):
        rows.append(("overdue before loaded (no sample)", [str(r.unwatched) for r in results]))
    label_w = max(len(label) for label, _ in rows)
    col_w = max(13, *(len(v) for _, values in rows for v in values))
    header = " " * label_w + "".join(f"  {r.devices:>{col_w},}" for r in results)
    lines = [header]
    lines += [
        label.ljust(label_w) + "".join(f"  {v:>{col_w}}" for v in values) for label, values in rows
    ]
    return lines


def _result_from_json(data: dict[str, Any]) -> Result:
    pauses = data.pop("pauses")
    sites = data.pop("traced_sites")
    result = Result(**data)
    result.traced_sites = [(where, per_device) for where, per_device in sites]
    result.pauses = Pauses(
        gc_max_s={int(g): s for g, s in pauses["gc_max_s"].items()},
        gc_count={int(g): n for g, n in pauses["gc_count"].items()},
        loop_lag_max_s=pauses["loop_lag_max_s"],
    )
    return result


def _run_in_child(size: int, args: argparse.Namespace) -> Result:
    """One fleet size in a process of its own: RSS and the heap start clean for each."""
    forwarded = [
        *("--devices", str(size), "--silent", str(args.silent), "--spread-s", str(args.spread_s)),
        *("--rate", str(args.rate), "--tracemalloc-max", str(args.tracemalloc_max)),
        *(("--lead-s", str(args.lead_s)) if args.lead_s is not None else ()),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, "-m", "bench.alerts", *forwarded, "--result-file", out]
        subprocess.run(command, check=True)
        with open(out) as file:
            return _result_from_json(json.load(file))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--silent", type=int, default=1500, help="devices that go silent")
    parser.add_argument("--spread-s", type=float, default=30, help="their deadlines spread over")
    parser.add_argument("--rate", type=float, default=15_000, help="heartbeats/s meanwhile")
    parser.add_argument(
        "--lead-s",
        type=float,
        default=None,
        help="engine start to first deadline (default 15 s + 30 us a device)",
    )
    parser.add_argument(
        "--tracemalloc-max",
        type=int,
        default=100_000,
        help="trace a second load of fleets up to this size (slow: about 4 min for 1 M)",
    )
    parser.add_argument("--result-file", help=argparse.SUPPRESS)  # one size, in a child
    args = parser.parse_args()
    if args.result_file:
        result = asyncio.run(_run_size(args.devices[0], args))
        with open(args.result_file, "w") as file:
            json.dump(dataclasses.asdict(result), file)
        return
    command = shlex.join([".venv/bin/python", "-m", "bench.alerts", *sys.argv[1:]])
    print(f"$ {command}", flush=True)
    results = [_run_in_child(size, args) for size in args.devices]
    print(f"\nAlert engine, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores")
    print(f"$ {command}")
    for line in _table(results):
        print(line)


if __name__ == "__main__":
    main()
