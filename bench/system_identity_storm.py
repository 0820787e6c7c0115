"""The reconnect storm: a fleet on TLS with its own certificates, connected and heartbeating, and
the broker restarted under it (stop, start, same configuration and persistence).

Every device then reconnects at once, with the back-off a hub uses (simulators/hub.py,
core.backoff: a delay drawn from 0-1.5 s after a lost session, growing by half with each failed
attempt up to 30 s). Measured from the moment the broker listens again: until every device is
connected, and until every device has a heartbeat committed that it sent after the restart (a
device whose heartbeat fell due while it was away sends it on reconnecting, the others on their
schedule, so this is at least the heartbeat interval's worth for some). Meanwhile the service
runs as deployed (`telecare run --only ingest,alerts`, on the service listener), on a registry of
these devices only, with the registry's default grace (window = twice the interval): any
heartbeat_missed, connection_lost or flapping alert raised for them is a false alert, since
every one of them kept heartbeating but for the broker's restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.system_cpu import CpuMeter, named
from bench.system_db import insert_fleet
from telecare.simulators.load_tls import DeviceFleet, FleetOptions
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.service_process import ServiceProcess

Say = Callable[[str], None]

_ALERTS = """
SELECT type, count(*), count(*) FILTER (WHERE state <> 'resolved')
FROM alerts WHERE device_id IS NOT NULL GROUP BY 1 ORDER BY 1
"""


@dataclass
class StormFigures:
    devices: int
    interval_s: int
    window_s: int  # interval + the registry's default grace
    connected_in_s: float  # the fleet's first connection, before the storm
    broker_restart_s: float  # stop and start
    all_connected_s: float  # from the broker listening again
    all_beat_s: float  # ... until every device has a heartbeat committed since
    beat_by_all_connected: float  # share of devices with one committed when all were connected
    beat_at_end: float  # ... an interval later (1.0 unless heartbeats were lost)
    failed_attempts: int  # connection attempts that failed during the storm
    alerts: dict[str, int] = field(default_factory=dict)  # raised during the run, by type
    alerts_open: dict[str, int] = field(default_factory=dict)  # of those, not resolved
    cpu: dict[str, float] = field(default_factory=dict)  # cores, until all were connected
    machine_cores: float = 0.0
    broker_rss_mb: float = 0.0  # after the reconnection

    @property
    def false_alerts(self) -> int:
        return sum(self.alerts.values())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _db(url: str, query: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _beaten_since(url: str, since: object) -> int:
    rows = _db(url, "SELECT count(*) FROM device_state WHERE last_heartbeat_at > %s", [since])
    return int(str(rows[0][0]))


def _check_alive(fleet: DeviceFleet, ingest: ServiceProcess) -> None:
    if not fleet.running:
        raise RuntimeError("a fleet worker exited")
    if ingest.process is None or ingest.process.poll() is not None:
        raise RuntimeError("the service exited")


class Storm:
    """One size of the storm: its own database, service and fleet, on the benchmark's broker."""

    def __init__(
        self,
        broker: PrivateBroker,
        fleet: FleetOptions,
        env: dict[str, str],
        logs: Path,
        say: Say,
        *,
        tree: Path | None = None,  # the checkout whose service runs
    ) -> None:
        self.tree = tree
        self.broker = broker
        self.fleet_options = fleet
        self.env = env
        self.logs = logs
        self.say = say

    def _broker_pid(self) -> list[int]:
        try:
            return [self.broker.pid]
        except AssertionError:  # not running (restarting)
            return []

    def _clean_broker(self) -> None:
        """Restarted without what an earlier phase left in its persistence (retained status)."""
        self.broker.stop()
        (self.broker.config_dir / "mosquitto.db").unlink(missing_ok=True)
        self.broker.start()

    async def run(self, interval_s: int, timeout_s: float) -> StormFigures:
        options, say = self.fleet_options, self.say
        devices = options.devices
        await asyncio.to_thread(self._clean_broker)
        url = await asyncio.to_thread(create_database, ADMIN_URL)
        env = {**self.env, "TELECARE_DATABASE_URL": url}
        fleet: DeviceFleet | None = None
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"storm-{devices}.log"
        ingest = ServiceProcess(env, log, "ingest,alerts", tree=self.tree)
        try:
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "telecare", "db", "upgrade"],
                cwd=self.tree,
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
            await asyncio.to_thread(
                insert_fleet, url, devices, 0, say, interval_s=interval_s, grace_s=None
            )
            await ingest.start(ready_within_s=300)
            fleet = DeviceFleet(options)
            fleet.start()
            connected_in = await fleet.wait_connected(devices, timeout_s)
            say(
                f"storm {devices:,}: connected in {connected_in:.0f} s; heartbeats every"
                f" {interval_s} s, one round first"
            )
            fleet.set_interval(interval_s)
            (started,) = _db(url, "SELECT now()")[0]
            async with asyncio.timeout(interval_s * 3 + 60):
                while await asyncio.to_thread(_beaten_since, url, started) < devices:
                    _check_alive(fleet, ingest)
                    await asyncio.sleep(1)
            return await self._restart(fleet, ingest, url, interval_s, timeout_s, connected_in)
        finally:
            if fleet is not None:
                await asyncio.to_thread(fleet.stop)
            await asyncio.to_thread(ingest.stop)
            await asyncio.to_thread(drop_database, ADMIN_URL, url)

    async def _restart(
        self,
        fleet: DeviceFleet,
        ingest: ServiceProcess,
        url: str,
        interval_s: int,
        timeout_s: float,
        connected_in: float,
    ) -> StormFigures:
        devices, say = fleet.devices, self.say
        cpu = CpuMeter(
            {
                "broker": self._broker_pid,
                "devices": lambda: fleet.pids,
                "ingest+alerts": lambda: [ingest.pid],
                "postgres": named("postgres"),
            }
        )
        (before,) = _db(url, "SELECT now()")[0]
        failed, connects = fleet.failures, fleet.connects
        cpu.start()
        stop_at = time.monotonic()
        await asyncio.to_thread(self.broker.restart)
        up_at = time.monotonic()
        say(f"storm {devices:,}: broker restarted in {up_at - stop_at:.1f} s; reconnecting")
        all_connected = all_beat = float("nan")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                # each device connected again (`connected` is the workers' count of a moment ago)
                while fleet.connects - connects < devices or fleet.connected < devices:
                    _check_alive(fleet, ingest)
                    await asyncio.sleep(0.1)
                all_connected = time.monotonic() - up_at
        shares = cpu.shares()
        beaten = await asyncio.to_thread(_beaten_since, url, before)
        beat_share = beaten / devices
        say(
            f"storm {devices:,}: {fleet.connected:,} connected {time.monotonic() - up_at:.1f} s"
            f" after the restart, {beaten:,} with a heartbeat since; cores {shares.describe()}"
        )
        # Every device beats within an interval of reconnecting, if the service hears it.
        deadline = time.monotonic() + interval_s + 30
        while beaten < devices and time.monotonic() < deadline:
            _check_alive(fleet, ingest)
            await asyncio.sleep(0.5)
            beaten = await asyncio.to_thread(_beaten_since, url, before)
        if beaten == devices:
            all_beat = time.monotonic() - up_at
        await asyncio.sleep(5)  # what the engine decided meanwhile reaches the database
        alerts = _db(url, _ALERTS)
        figures = StormFigures(
            devices=devices,
            interval_s=interval_s,
            window_s=interval_s + min(interval_s, 900),
            connected_in_s=round(connected_in, 1),
            broker_restart_s=round(up_at - stop_at, 2),
            all_connected_s=round(all_connected, 1),
            all_beat_s=round(all_beat, 1),
            beat_by_all_connected=round(beat_share, 3),
            beat_at_end=round(beaten / devices, 3),
            failed_attempts=fleet.failures - failed,
            alerts={str(kind): int(str(n)) for kind, n, _ in alerts},
            alerts_open={str(kind): int(str(n)) for kind, _, n in alerts},
            cpu={name: round(cores, 2) for name, cores in shares.cores.items()},
            machine_cores=round(shares.machine, 2),
            broker_rss_mb=round(_rss_mb(self.broker.pid), 0),
        )
        say(
            f"storm {devices:,}: {beaten:,} devices with a heartbeat committed since the restart"
            f" ({all_beat:.1f} s for all); alerts raised {figures.alerts or 'none'},"
            f" still open {figures.alerts_open or 'none'}"
        )
        return figures
