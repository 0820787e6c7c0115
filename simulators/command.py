"""`telecare simulate`: scenarios, ground-truth checks, load mode and the ad-hoc demo fleet."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

import httpx

from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.core.settings import Settings
from telecare.mqtt.client import MqttError
from telecare.simulators.adhoc import adhoc_scenario
from telecare.simulators.api_client import Api, ApiError
from telecare.simulators.load import LoadOptions, run_load
from telecare.simulators.run import RunOptions, run_scenario
from telecare.simulators.scenario import available_scenarios, load_scenario
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.service_restart import restart_by_command
from telecare.simulators.truth.check import check_report
from telecare.simulators.truth.expect import Tolerance
from telecare.simulators.truth.report import read_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a scenario (simulators/scenarios/NAME.toml or a path) and write its ground truth; "
        "--check REPORT compares a report with the API; --load measures throughput. Without a "
        "scenario: an ad-hoc steady fleet (--devices, --interval, --silent, --alarm-every)."
    )
    parser.add_argument("scenario", nargs="?", help="scenario name or .toml path")
    parser.add_argument("--list", action="store_true", help="list the bundled scenarios")
    parser.add_argument("--check", metavar="REPORT", type=Path, help="check a report")
    parser.add_argument("--load", action="store_true", help="load mode (see --rate)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="divide every scenario duration by this factor",
    )
    parser.add_argument("--devices", type=int, help="fleet size (scenario groups in proportion)")
    parser.add_argument(
        "--api-url",
        default=os.environ.get("TELECARE_API_URL", "http://127.0.0.1:8000"),
        help="backend API base URL (env TELECARE_API_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TELECARE_API_TOKEN"),
        help="technician or admin token (env TELECARE_API_TOKEN)",
    )
    parser.add_argument(
        "--operator-token",
        default=os.environ.get("TELECARE_OPERATOR_TOKEN"),
        help="operator token, for scenarios where an operator takes alarms",
    )
    parser.add_argument("--mqtt-url", help="broker URL (default: TELECARE_MQTT_URL)")
    parser.add_argument("--prefix", help="device id prefix (default: sim-<random>)")
    parser.add_argument(
        "--attach",
        type=Path,
        metavar="FLEET_FILE",
        help="run the devices of a fleet file instead of registering new ones",
    )
    parser.add_argument(
        "--fleet-file",
        type=Path,
        help="where to keep ids and passwords (0600); device certificates and keys go to the "
        "folder beside it (FILE.certs, 0700)",
    )
    parser.add_argument("--report", type=Path, help="where to write the ground-truth report")
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="no API: devices connect anonymously (scale runs, private broker)",
    )
    parser.add_argument(
        "--restart-command",
        metavar="CMD",
        help="shell command that restarts the service, for a scenario's restart events "
        "(TELECARE_RESTART_MODE term|kill, TELECARE_RESTART_DOWN_S; docs/SIMULATOR.md)",
    )
    parser.add_argument(
        "--progress", type=float, default=5.0, help="seconds between progress lines"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=Tolerance().transport_s,
        help="transport latency the ground truth tolerates, seconds",
    )
    adhoc = parser.add_argument_group("ad-hoc fleet (no scenario)")
    adhoc.add_argument("--interval", type=int, default=60, help="heartbeat interval, seconds")
    adhoc.add_argument("--silent", type=int, default=0, help="devices whose firmware hangs")
    adhoc.add_argument("--silent-after", type=float, default=30.0, help="seconds until they do")
    adhoc.add_argument("--alarm-every", type=float, help="mean seconds between alarms per device")
    adhoc.add_argument("--duration", type=float, help="seconds to run (ad hoc and --load)")
    load = parser.add_argument_group("load mode")
    load.add_argument("--rate", type=float, default=1000.0, help="target heartbeats per second")
    load.add_argument("--qos", type=int, choices=(0, 1), default=0)
    load.add_argument("--connections", type=int, default=4, help="connections per worker")
    load.add_argument("--workers", type=int, default=1, help="publisher processes")


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    broker = parse_mqtt_url(args.mqtt_url or settings.mqtt_url, ca_file=settings.mqtt_ca_file)
    try:
        if args.list:
            print("\n".join(available_scenarios()))
            return 0
        if args.check is not None:
            report = read_report(args.check)
            async with Api(args.api_url, args.token) as api:
                result = await check_report(report, api)
            return 0 if result.ok else 1
        if args.load:
            load = await run_load(
                LoadOptions(
                    broker=broker,
                    rate=args.rate,
                    duration_s=args.duration or 60.0,
                    devices=args.devices or 10_000,
                    qos=args.qos,
                    connections=args.connections,
                    workers=args.workers,
                    prefix=args.prefix or "load",
                )
            )
            return 1 if load.failed_workers else 0
        return await _run(args, broker)
    except ScenarioError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    except (ApiError, httpx.HTTPError, MqttError, ExceptionGroup) as exc:
        failures = _leaves(exc)
        expected = ApiError | httpx.HTTPError | MqttError | ScenarioError
        if not all(isinstance(e, expected) for e in failures):
            raise
        for failure in failures:
            print(f"simulate: {failure}", file=sys.stderr)
        return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, as the fleet's TaskGroups raise them."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def _run(args: argparse.Namespace, broker: BrokerAddress) -> int:
    prefix = args.prefix or f"sim-{secrets.token_hex(2)}"
    if args.scenario:
        scenario = load_scenario(args.scenario, time_scale=args.time_scale)
        report = args.report or Path(f"simulate-{scenario.name}-{prefix}.json")
    else:
        scenario = adhoc_scenario(
            devices=args.devices or 10,
            interval_s=args.interval,
            silent=args.silent,
            silent_after_s=args.silent_after,
            alarm_every_s=args.alarm_every,
            duration_s=args.duration,
        )
        report = args.report
    if args.devices and args.scenario:
        scenario = scenario.with_devices(args.devices)
    fleet_file = args.fleet_file
    if fleet_file is None and args.scenario and not (args.no_register or args.attach):
        fleet_file = Path(f"simulate-{prefix}.fleet.json")
    await run_scenario(
        RunOptions(
            scenario=scenario,
            broker=broker,
            prefix=prefix,
            api_url=args.api_url,
            token=args.token,
            operator_token=args.operator_token,
            register=not args.no_register,
            attach=args.attach,
            fleet_file=fleet_file,
            report_path=None if args.no_register else report,
            progress_s=args.progress,
            tolerance=Tolerance(transport_s=args.latency),
            restart=(
                restart_by_command(args.restart_command, args.api_url)
                if args.restart_command
                else None
            ),
        )
    )
    return 0
