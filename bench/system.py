"""`make bench`: the whole system on this machine at the size of the UK's telecare fleet.
Figures are printed (and written as JSON under build/bench/), never asserted.

On a private Mosquitto and a database of its own (dropped at the end), with `telecare run`
processes as they are deployed (`--only ingest,alerts` and `--only api`) and a registry of
--devices devices (1.8 M: everyone in the UK with telecare):

1. **raw ceiling**: the load publishers (simulators.load, QoS 1) as fast as they go, and a
   subscriber that only counts (bench/system_mqtt.py): messages per second delivered.
2. **ingest at saturation**: the same publishers with the service instead of the counter:
   heartbeats per second committed in the database, sustained over --window-s, and its ratio to
   the raw ceiling.
3. **ingest at the target rate** (--rate, 15,000/s: 1.8 M devices at a 2-minute interval) over
   --window-s, with alarms raised meanwhile (bench/system_alarms.py): publish to
   `accepted` ack, and publish to the alarm on the event stream.
4. **API under load**, still ingesting at the target rate: the console's hot requests with
   --api-clients concurrent clients (wrk; bench/system_api.py).
5. **storage**: bytes per heartbeat on disk with indexes; one device's last 30 days read back
   (bench/system_storage.py).

Committed heartbeats are counted by the database itself (`count(*)` at the start and the end of
each window); the cores each part used in each window are read from /proc.

    .venv/bin/python -m bench.system [--devices 1800000] [--rate 15000] [--window-s 60]
        [--tree DIR]  # run the service from another checkout (a "before"), same benchmark
        [--profile DIR]  # py-spy profiles of the service processes in phase 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.system_alarms import AlarmProbes, watch_alarm_events
from bench.system_api import HOT_REQUESTS, hammer
from bench.system_cpu import CpuMeter, named, py_spy
from bench.system_db import (
    INTERVAL_S,
    PREFIX,
    device_id,
    heartbeat_count,
    insert_fleet,
    set_chunk_interval,
)
from bench.system_mqtt import RawSubscriber
from bench.system_results import Percentiles, Results, report
from bench.system_storage import (
    StorageFigures,
    measure_size,
    query_month,
    seed_history,
)
from bench.system_window import Publishers, Window, ingest_losses, sustained
from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.simulators.load import LoadOptions, LoadWorkers
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.service_process import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
STARTED = time.perf_counter()
FLAT_OUT = 10_000_000  # heartbeats/s asked of the publishers: as fast as they go
PHASES = ["ceiling", "saturation", "target", "storage"]


def say(message: str) -> None:
    print(f"  [{time.perf_counter() - STARTED:6.0f} s] {message}", flush=True)


# --- the system under test ---


def _git_commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _publishers(
    broker_url: str, options: argparse.Namespace, rate: float, seconds: float
) -> LoadWorkers:
    return LoadWorkers(
        LoadOptions(
            broker=parse_mqtt_url(broker_url),
            rate=rate,
            duration_s=seconds,
            devices=options.devices - options.silent,
            qos=1,
            connections=options.connections,
            workers=options.publishers,
            prefix=PREFIX,
            interval_s=INTERVAL_S,
        )
    )


class Bench:
    raw_on_uvloop = False  # the raw subscriber's event loop (the ingest's is uvloop)

    def __init__(self, options: argparse.Namespace, broker: PrivateBroker, database_url: str):
        self.options = options
        self.broker = broker
        self.database_url = database_url
        self.tree: Path = options.tree
        self.logs = Path(options.out)
        self.results = Results(
            datetime.now(UTC).isoformat(timespec="seconds"),
            _git_commit(self.tree),
            options.devices,
            options.rate,
            options.broker_inflight,
            options.telemetry_connections,
            options.heartbeat_writers,
            options.one_process,
        )
        self.env = {
            "TELECARE_DATABASE_URL": database_url,
            **self._broker_env(),
            "TELECARE_MQTT_CLIENT_ID": "bench-ingest",
            "TELECARE_LOG_LEVEL": "INFO",
            # the deployment docs/OPERATIONS.md gives for a national fleet
            "TELECARE_MQTT_TELEMETRY_CONNECTIONS": str(options.telemetry_connections),
            "TELECARE_HEARTBEAT_WRITERS": str(options.heartbeat_writers),
        }
        if options.one_process:  # every role in one process (checkouts before 13ddca8 serve
            # /healthz only with the API role)
            self.ingest = self.api = ServiceProcess(
                self.env, self.logs / "service.log", "ingest,alerts,api", tree=self.tree
            )
        else:
            self.ingest = ServiceProcess(
                self.env, self.logs / "ingest.log", "ingest,alerts", tree=self.tree
            )
            self.api = ServiceProcess(self.env, self.logs / "api.log", "api", tree=self.tree)
        self.processes = list({id(p): p for p in (self.ingest, self.api)}.values())
        self.cpu_parts = {
            "ingest+alerts": lambda: [self.ingest.pid] if self.ingest.process else [],
            "api": lambda: [self.api.pid] if self.api.process and not options.one_process else [],
            "broker": lambda: [self.broker.pid],
            "postgres": named("postgres"),
            "publishers": lambda: self._publisher_pids,
        }
        self._publisher_pids: list[int] = []
        self.operator_token = ""

    def _broker_env(self) -> dict[str, str]:
        """Where the service finds the broker (and, on a broker that identifies clients by
        certificate, who it is: bench.system_identity)."""
        return {"TELECARE_MQTT_URL": self.broker.url}

    def _telecare(self, *args: str) -> str:
        """A `telecare` command of the checkout under test; its standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "telecare", *args],
            cwd=self.tree,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    async def count_committed(self) -> int:
        return await asyncio.to_thread(heartbeat_count, self.database_url)

    async def ingest_losses(self) -> dict[str, int]:
        return await ingest_losses(self.ingest.url)

    def _ingest_window(self, what: str, workers: Publishers) -> Window:
        """Heartbeats committed, and the ingest's losses, while `workers` publish."""
        return Window(
            what, workers, self.count_committed, CpuMeter(self.cpu_parts), self.ingest_losses
        )

    def _load(self, rate: float, seconds: float) -> Publishers:
        workers = _publishers(self.broker.url, self.options, rate, seconds)
        workers.start()
        self._publisher_pids = workers.pids
        return workers

    def _probes(self) -> tuple[list[str], Callable[[str], BrokerAddress]]:
        """The devices that raise alarms in phase 3, and where and as whom each connects."""
        ids = [device_id(n) for n in range(1000, 1000 + self.options.alarm_probes)]
        return ids, lambda _: self.broker.address

    async def prepare(self) -> None:
        say(f"schema ({self.tree})")
        await asyncio.to_thread(self._telecare, "db", "upgrade")
        if self.options.chunk_interval:
            await asyncio.to_thread(
                set_chunk_interval, self.database_url, self.options.chunk_interval
            )
        say(f"registry of {self.options.devices:,} devices")
        await asyncio.to_thread(
            insert_fleet, self.database_url, self.options.devices, self.options.silent, say
        )
        out = await asyncio.to_thread(
            self._telecare, "token", "create", "--role", "operator", "--name", "bench"
        )
        self.operator_token = out.strip().splitlines()[-1]

    async def raw_ceiling(self) -> None:
        options = self.options
        async with RawSubscriber(  # as many connections as the ingest's
            self.broker.address,
            "telecare/v1/+/heartbeat",
            connections=options.telemetry_connections,
            on_uvloop=self.raw_on_uvloop,
        ) as raw:
            cpu = CpuMeter(self.cpu_parts | {"raw subscriber": lambda: [raw.pid]})

            async def received() -> int:
                return raw.received

            workers = self._load(FLAT_OUT, options.warmup_s + options.window_s + 2)
            try:
                self.results.ceiling = await sustained(
                    Window("raw ceiling", workers, received, cpu, losses=None),
                    say,
                    warmup_s=options.warmup_s,
                    window_s=options.window_s,
                )
            finally:
                workers.stop()

    async def start_services(self) -> None:
        roles = " and ".join(f"--only {p.roles}" for p in self.processes)
        say(f"starting telecare run {roles}")
        self.logs.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(p.start(ready_within_s=600) for p in self.processes))
        say(f"service ready: ingest {self.ingest.url}, api {self.api.url}")

    async def _drain(self) -> None:
        """Until the ingest has written what the broker still held for it."""
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 3:
            await asyncio.sleep(1)
            now = await self.count_committed()
            if now != last:
                last, quiet_since = now, time.monotonic()
        say(f"drained: {last:,} heartbeats in the database")

    async def saturated(self) -> None:
        options = self.options
        workers = self._load(FLAT_OUT, options.warmup_s + options.window_s + 2)
        try:
            self.results.saturated = await sustained(
                self._ingest_window("ingest at saturation", workers),
                say,
                warmup_s=options.warmup_s,
                window_s=options.window_s,
            )
        finally:
            workers.stop()
        await self._drain()

    async def target(self) -> None:
        """The target rate: first ingest and alarms alone, then with the API under load."""
        options = self.options
        api_s = options.api_seconds * len(HOT_REQUESTS)
        seconds = options.warmup_s + options.window_s + api_s + 10
        workers = self._load(options.rate, seconds)
        probe_ids, address_for = self._probes()
        try:
            async with (
                AlarmProbes(address_for, probe_ids, options.alarm_rate) as probes,
                asyncio.TaskGroup() as tg,
            ):
                stream = tg.create_task(
                    watch_alarm_events(self.api.url, self.operator_token, probes.times)
                )
                measured = tg.create_task(
                    sustained(
                        self._ingest_window("ingest at the target rate", workers),
                        say,
                        warmup_s=options.warmup_s,
                        window_s=options.window_s,
                    )
                )
                await asyncio.sleep(options.warmup_s)
                self._profile(tg, "ingest", self.ingest, options.window_s - 10)
                await probes.raise_for(options.window_s - 5)
                self.results.target = await measured
                await asyncio.sleep(2)  # the last alarms reach the stream
                stream.cancel()
                times = probes.times
                self.results.alarm_ack = Percentiles.of(times.ack_ms())
                self.results.alarm_stream = Percentiles.of(times.stream_ms())
                self.results.alarms_not_accepted = len(times.published) - len(times.ack_ms())
                say(f"alarms: ack {self.results.alarm_ack}, stream {self.results.alarm_stream}")
            await self._api_under_load(workers)
        finally:
            workers.stop()
        await self._drain()

    def _profile(
        self, tg: asyncio.TaskGroup, name: str, service: ServiceProcess, seconds: float
    ) -> asyncio.Task[None] | None:
        """With --profile: py-spy samples `service` for `seconds` (a folded-stacks file)."""
        if self.options.profile is None:
            return None
        out = Path(self.options.profile)
        out.mkdir(parents=True, exist_ok=True)
        return tg.create_task(py_spy(service.pid, out / f"{name}.folded", seconds, say))

    async def _api_under_load(self, workers: Publishers) -> None:
        options = self.options
        window = await self._ingest_window("ingest while the API is under load", workers).open()
        async with asyncio.TaskGroup() as tg:
            self._profile(tg, "api", self.api, options.api_seconds * len(HOT_REQUESTS) - 2)
            await self._hammer_each()
        during = self.results.ingest_during_api = await window.close()
        say(f"ingest during the API phase: {during.delivered_per_s:,.0f}/s; cores: {window.cores}")

    async def _hammer_each(self) -> None:
        options = self.options
        for kind in HOT_REQUESTS:
            figures = await hammer(
                self.api.url,
                self.operator_token,
                kind,
                devices=options.devices,
                connections=options.api_clients,
                seconds=options.api_seconds,
            )
            self.results.api.append(figures)
            say(
                f"API {kind.name}: {figures.requests_per_s:,.0f} requests/s, p50"
                f" {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms, errors {figures.errors},"
                f" non-2xx {figures.non_2xx}"
            )

    async def storage(self) -> None:
        total, rows, interval = await asyncio.to_thread(measure_size, self.database_url)
        say(f"storage: {total:,} bytes for {rows:,} heartbeats = {total / max(1, rows):.0f} B each")
        ids = await asyncio.to_thread(seed_history, self.database_url, say)
        queries = await asyncio.to_thread(
            query_month, self.database_url, self.api.url, self.operator_token, ids
        )
        self.results.storage = StorageFigures(rows, total, interval, queries)
        for timing in queries:
            say(
                f"{timing.what}: {timing.rows:,} rows,"
                f" p50 {timing.p50_ms:.1f} ms, max {timing.max_ms:.1f} ms"
            )

    async def stop_services(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.processes))


# --- the report ---


async def run(options: argparse.Namespace) -> Results:
    # The broker as docs/OPERATIONS.md configures it, unless asked for another window.
    inflight = options.broker_inflight
    with PrivateBroker(extra_config=f"max_inflight_messages {inflight}") as broker:
        database_url = await asyncio.to_thread(create_database, ADMIN_URL)
        bench = Bench(options, broker, database_url)
        try:
            await bench.prepare()
            if "ceiling" in options.phases:
                say("phase 1: raw ceiling")
                await bench.raw_ceiling()
            await bench.start_services()
            try:
                if "saturation" in options.phases:
                    say("phase 2: ingest at saturation")
                    await bench.saturated()
                if "target" in options.phases:
                    say(f"phase 3 and 4: {options.rate:,.0f} heartbeats/s, alarms, then the API")
                    await bench.target()
                if "storage" in options.phases:
                    say("phase 5: storage")
                    await bench.storage()
            finally:
                await bench.stop_services()
        finally:
            if options.keep_database:
                say(f"database kept: {database_url}")
            else:
                await asyncio.to_thread(drop_database, ADMIN_URL, database_url)
        return bench.results


def build_parser(
    description: str | None = __doc__, phases: list[str] = PHASES
) -> argparse.ArgumentParser:
    """The options of this benchmark (bench.system_identity adds its own)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1_800_000)
    parser.add_argument("--silent", type=int, default=1000, help="devices with an open alert")
    parser.add_argument("--rate", type=float, default=15_000)
    parser.add_argument("--window-s", type=float, default=60)
    parser.add_argument("--warmup-s", type=float, default=10)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--connections", type=int, default=4, help="per publisher")
    parser.add_argument("--alarm-rate", type=float, default=10)
    parser.add_argument("--alarm-probes", type=int, default=20)
    parser.add_argument("--api-clients", type=int, default=50)
    parser.add_argument("--api-seconds", type=float, default=20)
    parser.add_argument("--phases", nargs="+", default=phases, choices=phases)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose service runs")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--keep-database", action="store_true", help="to look at it afterwards")
    parser.add_argument("--one-process", action="store_true", help="every role in one process")
    parser.add_argument("--broker-inflight", type=int, default=20, help="broker's QoS 1 window")
    parser.add_argument(
        "--telemetry-connections", type=int, default=4, help="the ingest's (shared subscription)"
    )
    parser.add_argument(
        "--heartbeat-writers", type=int, default=2, help="the ingest's database writers"
    )
    parser.add_argument(
        "--chunk-interval", default=None, help="heartbeat chunks, e.g. '2 hours' (default 7 days)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    return parser


def main() -> None:
    options = build_parser().parse_args()
    options.tree = options.tree.resolve()
    say(
        f"system benchmark: {options.devices:,} devices, target {options.rate:,.0f}/s,"
        f" service from {options.tree}"
    )
    results = asyncio.run(run(options))
    text = report(results)
    print()
    print(text, flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    stamp = results.started_at.replace(":", "")
    (options.out / f"system-{stamp}.json").write_text(
        json.dumps(asdict(results), indent=2, default=str)
    )
    (options.out / f"system-{stamp}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
