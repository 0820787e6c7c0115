"""`make bench`, second part: the national benchmark with identity enforced.

bench.system's phases (raw ceiling, saturation, the target rate with alarms, the API under
load) against the production broker (deploy/mosquitto/production.conf and production.acl, run
by tests/brokers.py with this run's certificates, persistence on as docs/OPERATIONS.md has it):
TLS on every connection, each device on its own connection with its own certificate (a device
may publish under its own id only), the ingest and the raw subscriber on the service listener
with the `telecare.ingest` certificate. Then the reconnect storm (bench/system_identity_storm.py).

One machine cannot hold 1.8 M TLS connections, so the registry holds --devices (1.8 M) and a
fleet of --fleet of them (simulators/load_tls.py) stays connected through the phases and carries
the load: at the target rate each device heartbeats every fleet/rate seconds. A broker's cost
per message does not depend on how many devices share a connection once each has its own (no
two heartbeats of a device ever share a read), so the fleet's size moves its memory and its
connection count, not its throughput. Both are bounded by the descriptors one process may hold
(a connection is one in the broker): the default fleet is 30,000, or fewer where the limit is
lower (a container without CAP_SYS_RESOURCE cannot raise its hard limit); likewise the storm's
100,000, run then at three sizes up to what fits.

Before measuring, the broker is shown to enforce identity (bench/system_identity_checks.py).

    .venv/bin/python -m bench.system_identity [--fleet D] [--storm-sizes N ...]
        [--storm-interval-s 120] [--quick] [bench.system's options]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.system import Bench, build_parser, say
from bench.system_db import INTERVAL_S, PREFIX, device_id
from bench.system_identity_checks import Checked, check_identity
from bench.system_identity_pki import DeviceCertificates
from bench.system_identity_report import report_identity
from bench.system_identity_storm import Storm, StormFigures
from bench.system_results import Results
from bench.system_window import Publishers
from telecare.core.mqtt_url import BrokerAddress
from telecare.devices.ca_setup import INGEST
from telecare.simulators.load_tls import DeviceFleet, FleetOptions, raise_descriptor_limit
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database

FLEET = 30_000
STORM = 100_000
HEADROOM = 1000  # the broker's descriptors besides devices: the ingest, probes, its files
PHASES = ["ceiling", "saturation", "target", "api", "storm"]
# The API does not touch MQTT: its figures are bench.system's; here, on two cores, wrk and the
# API would take the devices' share and the offered load fall below the target.
DEFAULT_PHASES = ["ceiling", "saturation", "target", "storm"]


@dataclass
class IdentityResults:
    fleet: int
    heartbeat_every_s: float
    descriptors: int  # open files one process may have here
    fleet_connected_s: float = 0.0
    checks: list[Checked] = field(default_factory=list)
    broker_rss_mb: dict[str, float] = field(default_factory=dict)
    storms: list[StormFigures] = field(default_factory=list)
    base: Results | None = None  # bench.system's phases


class FleetLoad:
    """A phase's load as bench.system sees it: the fleet at a rate; `stop()` idles it."""

    def __init__(self, fleet: DeviceFleet) -> None:
        self.fleet = fleet

    @property
    def sent(self) -> int:
        return self.fleet.sent

    def stop(self) -> None:
        self.fleet.set_rate(0)


def fleet_options(
    broker: PrivateBroker, certs: DeviceCertificates, options: argparse.Namespace, devices: int
) -> FleetOptions:
    assert broker.ca is not None
    return FleetOptions(
        host="127.0.0.1",
        port=broker.port,
        server_name="127.0.0.1",
        ca_file=str(broker.ca.broker_ca_cert),
        cert_dir=str(certs.folder),
        devices=devices,
        prefix=PREFIX,
        workers=options.fleet_workers,
        interval_s=INTERVAL_S,
        connecting=options.connecting,
        window=1,  # a device publishes its next heartbeat once the last one is PUBACKed
        # Real devices bring their own CPUs: here the service and the broker come first, and
        # the devices publish with what is left (without it, flat out, the devices' processes
        # took the subscriber's share of the cores and the raw ceiling swung 2,000-13,000/s).
        nice=10,
    )


def service_env(broker: PrivateBroker) -> dict[str, str]:
    """The service listener, as `telecare.ingest` (the files `telecare ca init` made)."""
    assert broker.ca is not None
    cert, key = broker.ca.services[INGEST]
    return {
        "TELECARE_MQTT_URL": broker.url,
        "TELECARE_MQTT_CA_FILE": str(broker.ca.broker_ca_cert),
        "TELECARE_MQTT_CERT_FILE": str(cert),
        "TELECARE_MQTT_KEY_FILE": str(key),
    }


def device_address(
    broker: PrivateBroker, certs: DeviceCertificates
) -> Callable[[str], BrokerAddress]:
    """Where and as whom a device connects: the device listener, with its own certificate."""

    def address(device: str) -> BrokerAddress:
        path = certs.file(device)  # the certificate and its key in one file
        return broker.device_address(path, path)

    return address


class IdentityBench(Bench):
    # On TLS asyncio's own loop decrypts in Python, uvloop (which `telecare run` uses) does not.
    raw_on_uvloop = True

    def __init__(
        self,
        options: argparse.Namespace,
        broker: PrivateBroker,
        database_url: str,
        certs: DeviceCertificates,
    ) -> None:
        super().__init__(options, broker, database_url)
        self.device_address = device_address(broker, certs)
        self.fleet = DeviceFleet(fleet_options(broker, certs, options, options.fleet))

    def _broker_env(self) -> dict[str, str]:
        return service_env(self.broker)

    async def _api_under_load(self, workers: Publishers) -> None:
        if "api" in self.options.phases:
            await super()._api_under_load(workers)

    def _load(self, rate: float, seconds: float) -> Publishers:
        self.fleet.set_rate(rate)
        self._publisher_pids = self.fleet.pids
        return FleetLoad(self.fleet)

    def _probes(self) -> tuple[list[str], Callable[[str], BrokerAddress]]:
        first = self.options.fleet  # devices of the registry outside the fleet
        ids = [device_id(n) for n in range(first, first + self.options.alarm_probes)]
        return ids, self.device_address

    async def connect_fleet(self) -> float:
        say(f"fleet: {self.options.fleet:,} devices connecting, each with its certificate")
        self.fleet.start()
        took = await self.fleet.wait_connected(self.options.fleet, timeout_s=1800)
        say(f"fleet connected in {took:.0f} s ({self.fleet.failures} failed attempts)")
        return took


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return 0.0


async def _phases(bench: IdentityBench, results: IdentityResults) -> None:
    options = bench.options
    await bench.prepare()
    results.fleet_connected_s = round(await bench.connect_fleet(), 1)
    results.broker_rss_mb["fleet connected"] = _rss_mb(bench.broker.pid)
    try:
        if "ceiling" in options.phases:
            say("phase 1: raw ceiling over TLS (ingest's certificate)")
            await bench.raw_ceiling()
        await bench.start_services()
        try:
            if "saturation" in options.phases:
                say("phase 2: ingest at saturation")
                await bench.saturated()
            if "target" in options.phases:
                say(f"phase 3 and 4: {options.rate:,.0f} heartbeats/s, alarms, then the API")
                await bench.target()
                results.broker_rss_mb["after the target"] = _rss_mb(bench.broker.pid)
        finally:
            await bench.stop_services()
    finally:
        await asyncio.to_thread(bench.fleet.stop)


async def run(options: argparse.Namespace) -> IdentityResults:
    descriptors = raise_descriptor_limit()  # the broker inherits it
    broker = PrivateBroker(
        production=True,
        persistence=True,
        extra_config=(
            f"max_inflight_messages {options.broker_inflight}\n"
            "max_queued_messages 100000\nmax_queued_bytes 0\nautosave_interval 60"
        ),
    )
    assert broker.ca is not None
    certs = DeviceCertificates(broker.ca, broker.config_dir / "devices")
    revoked = certs.revoke_one()  # before the broker reads the list
    wanted = options.fleet + options.alarm_probes
    started = time.perf_counter()
    issued = await asyncio.to_thread(certs.issue, [device_id(n) for n in range(wanted)])
    say(f"{issued:,} device certificates in {time.perf_counter() - started:.0f} s")
    results = IdentityResults(options.fleet, options.fleet / options.rate, descriptors)
    with broker:
        address = device_address(broker, certs)
        results.checks = await check_identity(
            address(device_id(0)),
            address(revoked),
            broker.service_address(INGEST),
            (device_id(0), device_id(1)),
        )
        for checked in results.checks:
            say(f"identity: {checked.what}: {checked.got} ({'ok' if checked.ok else 'NOT OK'})")
        if set(options.phases) & {"ceiling", "saturation", "target"}:
            database_url = await asyncio.to_thread(create_database, ADMIN_URL)
            try:
                bench = IdentityBench(options, broker, database_url, certs)
                results.base = bench.results
                await _phases(bench, results)
            finally:
                await asyncio.to_thread(drop_database, ADMIN_URL, database_url)
        if "storm" in options.phases:
            await _storms(options, broker, certs, results)
    return results


async def _storms(
    options: argparse.Namespace,
    broker: PrivateBroker,
    certs: DeviceCertificates,
    results: IdentityResults,
) -> None:
    env = {  # the service as in the other phases
        **service_env(broker),
        "TELECARE_MQTT_CLIENT_ID": "bench-storm",
        "TELECARE_LOG_LEVEL": "INFO",
        "TELECARE_MQTT_TELEMETRY_CONNECTIONS": str(
            options.storm_telemetry_connections or options.telemetry_connections
        ),
        "TELECARE_HEARTBEAT_WRITERS": str(options.heartbeat_writers),
    }
    for size in options.storm_sizes:
        say(f"reconnect storm: {size:,} devices")
        await asyncio.to_thread(certs.issue, [device_id(n) for n in range(size)])
        fleet = replace(
            fleet_options(broker, certs, options, size), interval_s=options.storm_interval_s
        )
        storm = Storm(broker, fleet, env, Path(options.out), say, tree=options.tree)
        figures = await storm.run(options.storm_interval_s, timeout_s=1800)
        results.storms.append(figures)


def _sizes(options: argparse.Namespace, fits: int) -> None:
    """The fleet's and the storm's sizes: as asked, or the defaults where they fit."""
    if options.quick:
        options.devices, options.fleet, options.storm_sizes = 20_000, 2_000, [1_000]
        options.window_s, options.warmup_s, options.api_seconds = 15, 5, 3
        options.storm_interval_s = 15
    options.fleet = options.fleet or min(FLEET, fits)
    if not options.storm_sizes:
        top = min(STORM, fits) // 1000 * 1000
        options.storm_sizes = [top] if top == STORM else [top // 4, top // 2, top]
    if options.devices < options.fleet + options.alarm_probes + options.silent:
        raise SystemExit("--devices must hold the fleet, the alarm probes and the silent devices")


async def _cancellable(work: Coroutine[None, None, IdentityResults]) -> IdentityResults:
    """SIGTERM cancels the run: its broker, devices, service and database are cleaned up."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def main() -> None:
    parser = build_parser(__doc__, PHASES)
    parser.set_defaults(phases=DEFAULT_PHASES)
    parser.add_argument("--fleet", type=int, default=0, help=f"connected devices ({FLEET:,})")
    parser.add_argument("--fleet-workers", type=int, default=2, help="device processes")
    parser.add_argument("--connecting", type=int, default=200, help="handshakes at once, each")
    parser.add_argument("--storm-sizes", type=int, nargs="+", default=[])
    parser.add_argument("--storm-interval-s", type=int, default=120)
    parser.add_argument(
        "--storm-telemetry-connections", type=int, default=0, help="(--telemetry-connections)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    options = parser.parse_args()
    options.tree = options.tree.resolve()
    fits = raise_descriptor_limit() - HEADROOM
    _sizes(options, fits)
    say(
        f"identity benchmark: {options.devices:,} registered, fleet {options.fleet:,} (at most"
        f" {fits:,} fit), storm {options.storm_sizes}, target {options.rate:,.0f}/s"
    )
    results = asyncio.run(_cancellable(run(options)))
    text = report_identity(results)
    print()
    print(text, flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    (options.out / f"system-identity-{stamp}.json").write_text(
        json.dumps(asdict(results), indent=2, default=str)
    )
    (options.out / f"system-identity-{stamp}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
