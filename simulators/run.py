"""One scenario run: register (or attach), bring the fleet up, play the events, write the report."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telecare.core.mqtt_url import BrokerAddress
from telecare.simulators.api_client import Api
from telecare.simulators.bad_actors import BadActor, detect_broker_mode
from telecare.simulators.certificates import CertificateFolder
from telecare.simulators.fleet_stats import FleetStats
from telecare.simulators.hub import Hub
from telecare.simulators.hub_parts import HubIdentity
from telecare.simulators.player import Player, RestartService
from telecare.simulators.registration import (
    Registered,
    plan_fleet,
    read_fleet_file,
    register_fleet,
    write_fleet_file,
)
from telecare.simulators.scenario import Scenario
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.scenario_events import Do
from telecare.simulators.timeline import Timeline
from telecare.simulators.truth.expect import Tolerance, iso
from telecare.simulators.truth.report import build_report, write_report
from telecare.simulators.truth.thresholds import Rules

log = logging.getLogger(__name__)

MIGRATION_PATH = "/devices/{device_id}/migration"


def say(text: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[simulate {stamp}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunOptions:
    scenario: Scenario
    broker: BrokerAddress
    prefix: str
    api_url: str | None = None
    token: str | None = None
    operator_token: str | None = None
    register: bool = True
    attach: Path | None = None
    fleet_file: Path | None = None
    report_path: Path | None = None
    progress_s: float = 5.0
    connect_concurrency: int = 200
    tolerance: Tolerance = field(default_factory=Tolerance)
    say: Callable[[str], None] = say
    restart: RestartService | None = None  # for the scenario's `restart` events


Registrar = Callable[[Callable[[Registered], None]], Awaitable[list[Registered]]]


async def run_scenario(options: RunOptions) -> dict[str, Any]:
    """Run the scenario to its end; return (and write, if asked) the ground-truth report."""
    scenario = options.scenario
    started_at = time.time()
    if options.restart is None and any(a.do is Do.RESTART for a in scenario.actions):
        raise ScenarioError(
            f"scenario {scenario.name!r} restarts the service: say how (--restart-command)"
        )
    if not options.register:
        fleet = _unregistered(options)

        async def power_on(start: Callable[[Registered], None]) -> list[Registered]:
            for r in fleet:
                start(r)
            return fleet

        return await _run(options, len(fleet), power_on, None, started_at)
    if options.api_url is None:
        raise ScenarioError("registering needs --api-url (or use --no-register)")
    async with (
        Api(options.api_url, options.token) as api,
        Api(options.api_url, options.operator_token) as operator,
    ):
        rules = await api.alert_rules()
        if any(a.do is Do.STAGE for a in scenario.actions) and not await api.has(
            "post", MIGRATION_PATH
        ):
            raise ScenarioError(
                f"scenario {scenario.name!r} moves devices through migration stages, and this "
                f"backend has no POST /api/v1{MIGRATION_PATH}"
            )
        _warn_thresholds(options, rules)
        planned = (
            read_fleet_file(options.attach)
            if options.attach
            else plan_fleet(scenario, options.prefix)
        )

        certificates = CertificateFolder.for_run(options.fleet_file)

        async def register(start: Callable[[Registered], None]) -> list[Registered]:
            """Each hub powers on as soon as its device is registered, as an installer's does."""
            begun = time.monotonic()
            registered = await register_fleet(
                api,
                scenario,
                planned,
                attach=bool(options.attach),
                certificates=certificates,
                on_registered=start,
            )
            kept = certificates.directory
            options.say(
                f"{'attached to' if options.attach else 'registered'} {len(registered)} devices "
                f"in {time.monotonic() - begun:.1f} s"
                + (f"; their certificates and keys are in {kept}" if kept else "")
            )
            if options.fleet_file is not None:
                devices = [r.device for r in registered]
                write_fleet_file(options.fleet_file, options.api_url or "", devices)
            return registered

        with certificates:  # a temporary folder's keys go when the run ends
            return await _run(
                options,
                len(planned),
                register,
                rules,
                started_at,
                api,
                operator if options.operator_token else None,
            )


async def _run(
    options: RunOptions,
    size: int,
    registrar: Registrar,
    rules: dict[str, Any] | None,
    started_at: float,
    api: Api | None = None,
    operator: Api | None = None,
) -> dict[str, Any]:
    scenario = options.scenario
    timeline = Timeline(recording=rules is not None)
    mode = await detect_broker_mode(options.broker, f"{options.prefix}-probe")
    stats = FleetStats(devices=size)
    groups = {g.name: g for g in scenario.groups}
    gate = asyncio.Semaphore(options.connect_concurrency)
    rng = random.Random(scenario.seed)  # noqa: S311 - simulation, not secrets
    hubs: dict[str, list[Hub]] = {g.name: [] for g in scenario.groups}
    bad_actor = BadActor(options.broker, timeline, mode, options.prefix)
    player = Player(hubs, timeline, api, bad_actor, operator, options.restart)
    options.say(
        f"scenario {scenario.name}: {size} devices, broker {mode}, "
        f"{scenario.duration_s:g} s at time scale {scenario.time_scale:g}"
    )
    async with asyncio.TaskGroup() as tg:
        tasks: list[asyncio.Task[None]] = []

        def start(r: Registered) -> None:
            if options.register:
                timeline.add(
                    r.device.device_id,
                    "registered",
                    at=r.stage_changed_at,
                    interval=r.interval_s,
                    grace=r.grace_s,
                    stage=r.stage,
                    last_hb=r.last_heartbeat_at,
                    power=r.power,
                )
            identity = HubIdentity(
                r.device.device_id,
                r.device.password,
                groups[r.device.group],
                r.device.network,
                r.interval_s,
                cert_file=r.device.cert_file,
                key_file=r.device.key_file,
                ca_file=r.device.ca_file,
            )
            hub = Hub(identity, options.broker, timeline, stats, _child_rng(rng), gate)
            hubs[r.device.group].append(hub)
            tasks.append(tg.create_task(hub.run(), name=f"hub[{hub.device_id}]"))

        progress = tg.create_task(_progress(stats, options), name="simulate.progress")
        registered = await registrar(start)
        for group in hubs.values():
            group.sort(key=lambda h: h.device_id)  # registration finished in any order
        others = await _others_by_district(api, registered) if api else {}
        await _until_connected(stats, size, options)
        t0, t0_wall = time.monotonic(), time.time()
        play = tg.create_task(player.play(scenario.actions, t0), name="simulate.player")
        await asyncio.sleep(scenario.duration_s)
        ended_at = time.time()
        await player.restarts_settled()
        play.cancel()
        for group in hubs.values():
            for hub in group:
                hub.stop()
        await asyncio.wait(tasks)
        progress.cancel()
    options.say("final: " + stats.line())
    for error in player.errors:
        options.say(f"error: {error}")
    run = {
        "scenario": scenario.name,
        "description": scenario.description,
        "time_scale": scenario.time_scale,
        "seed": scenario.seed,
        "started_at": started_at,
        "t0_at": t0_wall,
        "ended_at": ended_at,
        "api_url": options.api_url,
        "broker": {"host": options.broker.host, "port": options.broker.port, "mode": mode},
        "raised_types_at_run": rules.get("raised_types", []) if rules else [],
        "stats": {k: v for k, v in vars(stats).items() if not k.startswith("_")},
        "errors": player.errors,
        "service_outages": timeline.outages,
        "intruders": [{**i, "at": iso(i["t"])} for i in timeline.intruders],
    }
    report = _report(options, run, registered, timeline, rules, others)
    if options.report_path is not None:
        write_report(options.report_path, report)
        options.say(f"ground truth written to {options.report_path}")
    return report


def _report(
    options: RunOptions,
    run: dict[str, Any],
    registered: list[Registered],
    timeline: Timeline,
    rules: dict[str, Any] | None,
    others: dict[str, int],
) -> dict[str, Any]:
    devices = {
        r.device.device_id: {
            "group": r.device.group,
            "district": r.district,
            "network": r.device.network,
            "interval_s": r.interval_s,
            "grace_s": r.grace_s,
            "timeline": timeline.of(r.device.device_id),
        }
        for r in registered
    }
    return build_report(
        run=run,
        devices=devices,
        rules=Rules.from_json(rules) if rules else None,
        tolerance=options.tolerance,
        quarantine=timeline.quarantine,
        spoofed=timeline.spoofed,
        others_by_district=others,
    )


def _child_rng(rng: random.Random) -> random.Random:
    return random.Random(rng.getrandbits(64))  # noqa: S311 - simulation, not secrets


def _unregistered(options: RunOptions) -> list[Registered]:
    """--no-register: ids from the prefix, no passwords (an anonymous development broker)."""
    intervals = {g.name: g.heartbeat_interval_s for g in options.scenario.groups}
    return [
        Registered(d, intervals[d.group], None, "analogue", 0.0, None)
        for d in plan_fleet(options.scenario, options.prefix)
    ]


async def _until_connected(stats: FleetStats, total: int, options: RunOptions) -> None:
    for _ in range(int(5 * (60 + total / 100))):  # 60 s and 10 ms a device, in 0.2 s steps
        if stats.connected >= total:
            break
        await asyncio.sleep(0.2)
    if stats.connected < total:
        options.say(
            f"only {stats.connected}/{total} devices connected; playing the scenario anyway"
        )
    else:
        options.say(f"all {total} devices connected")


async def _progress(stats: FleetStats, options: RunOptions) -> None:
    while True:
        await asyncio.sleep(options.progress_s)
        options.say(stats.line())


async def _others_by_district(api: Api, registered: list[Registered]) -> dict[str, int]:
    """Devices of each of our districts that are not ours: they count towards area thresholds."""
    ours: dict[str, int] = {}
    for r in registered:
        if r.district:
            ours[r.district] = ours.get(r.district, 0) + 1
    others = {}
    for district, count in ours.items():
        total = 0
        async for _ in api.pages("/devices", postcode_district=district):
            total += 1
        others[district] = max(0, total - count)
    return others


def _warn_thresholds(options: RunOptions, rules: dict[str, Any]) -> None:
    for key, wanted in options.scenario.backend_settings().items():
        if key in rules and float(rules[key]) != float(wanted):
            options.say(
                f"note: the backend's {key} is {rules[key]}; this scenario is written for "
                f"{wanted} at this time scale (TELECARE_{key.upper()}={wanted:g}). "
                "The ground truth uses the backend's value."
            )
