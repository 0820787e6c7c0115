"""`telecare simulate`: register a fleet of simulated devices and run them against the broker."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import httpx

from core.mqtt_url import parse_mqtt_url
from core.settings import Settings
from simulators.device import DeviceConfig, SimDevice
from simulators.fleet import FleetPlan, run_fleet
from simulators.registration import RegistrationError, device_ids, register_devices
from simulators.stats import FleetStats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10, help="number of devices")
    parser.add_argument("--interval", type=int, default=60, help="heartbeat interval, seconds")
    parser.add_argument(
        "--api-url",
        default=os.environ.get("TELECARE_API_URL", "http://127.0.0.1:8000"),
        help="backend API base URL (env TELECARE_API_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TELECARE_API_TOKEN"),
        help="technician or admin bearer token (env TELECARE_API_TOKEN)",
    )
    parser.add_argument("--prefix", default="sim", help="device id prefix")
    parser.add_argument("--silent", type=int, default=0, help="devices that stop heartbeating")
    parser.add_argument("--silent-after", type=float, default=30.0, help="seconds until silent")
    parser.add_argument(
        "--alarm-every", type=float, default=None, help="mean seconds between alarms per device"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds to run")


def _check(args: argparse.Namespace) -> str | None:
    if args.devices < 1:
        return "--devices must be at least 1"
    if not 10 <= args.interval <= 604800:
        return "--interval must be 10..604800 seconds"
    if not 0 <= args.silent <= args.devices:
        return "--silent must be between 0 and --devices"
    if args.alarm_every is not None and args.alarm_every <= 0:
        return "--alarm-every must be positive"
    if args.duration is not None and args.duration <= 0:
        return "--duration must be positive"
    return None


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    problem = _check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    ids = device_ids(args.prefix, args.devices)
    try:
        passwords = await register_devices(args.api_url, args.token, ids, args.interval)
    except (RegistrationError, httpx.HTTPError) as exc:
        print(f"registration failed: {exc}", file=sys.stderr)
        return 1
    reused = sum(1 for p in passwords.values() if p is None)
    print(
        f"registered {len(ids) - reused} new, reused {reused} existing device(s)",
        file=sys.stderr,
    )
    broker = parse_mqtt_url(settings.mqtt_url)
    stats = FleetStats()
    devices = [
        SimDevice(DeviceConfig(i, passwords[i], args.interval, args.alarm_every), broker, stats)
        for i in ids
    ]
    plan = FleetPlan(args.silent, args.silent_after, args.duration)
    await run_fleet(devices, stats, plan)
    return 0
