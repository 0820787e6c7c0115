"""The `telecare` command: db upgrade, run, token create, simulate, contract export, ca,
device."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import uvloop

from telecare import device_commands
from telecare.api.tokens import Role, create_token
from telecare.contract_files import DEFAULT_OUT, run_export
from telecare.core.logs import setup_logging
from telecare.core.settings import ROLES, Settings
from telecare.db import audit
from telecare.db.migrations.runner import upgrade
from telecare.db.pool import open_pool
from telecare.db.retention import RetentionPolicy, prune
from telecare.devices import ca_setup
from telecare.service import Service
from telecare.simulators.command import add_arguments as add_simulate_arguments
from telecare.simulators.command import run_simulate

log = logging.getLogger("telecare")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telecare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="create or upgrade the schema (idempotent)")
    prune_parser = db_commands.add_parser(
        "prune",
        help="remove telemetry and resolved records past their retention (docs/OPERATIONS.md)",
    )
    prune_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be removed, remove nothing"
    )

    run = commands.add_parser("run", help="run ingest, alert engine and API")
    run.add_argument(
        "--only",
        default=",".join(sorted(ROLES)),
        help="comma-separated roles to run in this process: ingest,alerts,api (default: all)",
    )

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a new API token (last line)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True)

    add_simulate_arguments(commands.add_parser("simulate", help="run a simulated device fleet"))

    contract = commands.add_parser("contract", help="the machine-readable contract")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True)
    export = contract_commands.add_parser(
        "export", help="write the JSON Schemas, AsyncAPI and OpenAPI of docs/PROTOCOL.md"
    )
    export.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")

    ca_setup.add_arguments(commands.add_parser("ca", help="certificate authorities (REGISTRY.md)"))
    device_commands.add_arguments(commands.add_parser("device", help="device credentials"))
    return parser


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    if args.db_command == "prune":
        return await _db_prune(settings, args)
    async with open_pool(settings) as pool, pool.connection() as conn:
        result = await upgrade(conn)
    applied = ", ".join(str(v) for v in result.applied) or "none (already up to date)"
    print(f"migrations applied: {applied}")
    print(f"timescaledb: {'enabled' if result.timescaledb else 'NOT available (plain tables)'}")
    return 0


async def _db_prune(settings: Settings, args: argparse.Namespace) -> int:
    policy = RetentionPolicy.from_settings(settings)
    print(
        f"retention: telemetry {policy.heartbeat_days} days,"
        f" resolved alarms and alerts {policy.record_days} days"
    )
    async with open_pool(settings) as pool:
        report = await prune(pool, policy, dry_run=args.dry_run, actor=audit.CLI)
    print("\n".join(report.lines()))
    return 1 if report.skipped else 0


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    roles = {r.strip() for r in args.only.split(",") if r.strip()}
    if not roles or roles - ROLES:
        print(f"--only takes roles from {sorted(ROLES)}, got {args.only!r}", file=sys.stderr)
        return 2
    async with Service(settings, roles) as service:
        log.info("telecare running roles=%s", ",".join(sorted(roles)))
        if "api" in roles:
            print(f"API listening on {service.api_url}", flush=True)
        else:
            print(f"/healthz and /metrics on {service.api_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()  # until SIGTERM or Ctrl-C: then every role stops in order
        log.info("telecare stopping roles=%s", ",".join(sorted(roles)))
    return 0


async def _token_create(settings: Settings, args: argparse.Namespace) -> int:
    async with open_pool(settings) as pool:
        token = await create_token(pool, role=Role(args.role), name=args.name)
    print(f"token for {args.name!r} with role {args.role}:", file=sys.stderr)
    print(token)
    return 0


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    return await run_simulate(args, settings)


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "db": _db,
    "run": _run,
    "token": _token_create,
    "simulate": _simulate,
    "device": device_commands.run_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "contract":  # needs no configuration, database or broker
        return run_export(args.out)
    if args.command == "ca":  # files only
        return ca_setup.run_command(args)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    command = _COMMANDS[args.command]
    try:
        return uvloop.run(command(settings, args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
