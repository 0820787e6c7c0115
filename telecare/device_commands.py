"""`telecare device ...`: register, import, re-issue, revoke and inspect device credentials from
the command line, for a technician's laptop or a provisioning script (docs/REGISTRY.md).

The same code paths as the API, with the audit actor `cli`. Certificate bundles are written as
files (`--out DIR/<device id>/<serial>/`: certificate.pem, private-key.pem when the key was
generated here, device-ca.pem, broker-ca.pem), never printed, and an existing bundle is never
overwritten; the summary on standard output is JSON. A revocation is made to bite before the
command returns: the revocation list is written, the broker reloaded and the device's
connection closed, as the running service would within seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from telecare.api.csv_import import parse_rows
from telecare.api.schemas import DeviceCreate
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db import audit
from telecare.db.pool import Pool, open_pool
from telecare.devices.broker_files import BrokerFilesPublisher
from telecare.devices.bulk_import import import_devices
from telecare.devices.certificates import DeviceCertificates, device_certificates, serial_hex
from telecare.devices.changes import reissue_certificate, revoke_certificates
from telecare.devices.credentials import NoBrokerCredentials
from telecare.devices.device_ca import IssuedCertificate
from telecare.devices.registry import NewDevice, fetch_device, register_device

_OUT_HELP = "folder for the certificate bundles (one sub-folder per device)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="device_command", required=True)
    register = commands.add_parser("register", help="register one device")
    register.add_argument("device_id")
    register.add_argument("--interval", type=int, required=True, help="heartbeat period, s")
    register.add_argument("--grace", type=int, help="seconds past the interval before overdue")
    register.add_argument("--postcode")
    register.add_argument("--model")
    register.add_argument("--migration-stage", default="analogue")
    register.add_argument("--csr", type=Path, help="the device's certificate request (PEM)")
    register.add_argument(
        "--credential",
        choices=["certificate", "password"],
        help="a device that cannot present a certificate: `password` (default: certificate"
        " where certificates are in use)",
    )
    register.add_argument("--out", type=Path, help=_OUT_HELP)

    bulk = commands.add_parser("import", help="register the devices of a CSV file")
    bulk.add_argument("file", type=Path)
    bulk.add_argument("--dry-run", action="store_true")
    bulk.add_argument("--out", type=Path, help=_OUT_HELP)

    reissue = commands.add_parser("reissue", help="a new certificate; the old one is revoked")
    reissue.add_argument("device_id")
    reissue.add_argument("--csr", type=Path, help="the device's certificate request (PEM)")
    reissue.add_argument("--out", type=Path, required=True, help=_OUT_HELP)

    revoke = commands.add_parser("revoke", help="revoke the device's certificates in use")
    revoke.add_argument("device_id")
    revoke.add_argument("--reason", choices=["compromised", "withdrawn"], default="withdrawn")

    show = commands.add_parser("credentials", help="the device's certificates (no secret)")
    show.add_argument("device_id")


async def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0 done, 1 refused (the reason on standard error), 2 usage."""
    try:
        return await _run(settings, args)
    except (LookupError, ValueError, ValidationError) as exc:  # unknown id, conflict, bad input
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    certificates = None
    if settings.broker_credentials == "certificates":
        certificates = DeviceCertificates.from_settings(settings)
    elif args.device_command in {"reissue", "revoke"} or getattr(args, "csr", None):
        print("device certificates are not in use (TELECARE_BROKER_CREDENTIALS)", file=sys.stderr)
        return 2
    writes_bundles = (
        args.device_command in {"register", "import"}
        and not getattr(args, "dry_run", False)
        and getattr(args, "credential", None) != "password"
    )
    if certificates is not None and writes_bundles and getattr(args, "out", None) is None:
        print("--out DIR is needed: the certificate bundles are written there", file=sys.stderr)
        return 2
    async with open_pool(settings) as pool:
        match args.device_command:
            case "register":
                summary = await _register(pool, args, certificates)
            case "import":
                summary = await _import(pool, args, certificates)
            case "reissue":
                assert certificates is not None
                issued = await reissue_certificate(
                    pool, args.device_id, csr_pem=_read(args.csr), actor=audit.CLI,
                    certificates=certificates,
                )  # fmt: skip
                saved = _save(args.out, issued, certificates)
                summary = {"device_id": args.device_id, "certificate": saved}
            case "revoke":
                assert certificates is not None
                serials = await revoke_certificates(
                    pool, args.device_id, reason=args.reason, actor=audit.CLI,
                    certificates=certificates,
                )  # fmt: skip
                publisher = BrokerFilesPublisher(settings, pool, Metrics(), certificates.ca)
                published = await publisher.publish_if_needed()
                summary = {
                    "device_id": args.device_id,
                    "revoked": [serial_hex(s) for s in serials],
                    "published": asdict(published) if published else None,
                }
            case _:
                summary = await _credentials(pool, args.device_id)
    print(json.dumps(summary, indent=2, default=str))
    return 0


async def _register(
    pool: Pool, args: argparse.Namespace, certificates: DeviceCertificates | None
) -> dict[str, object]:
    valid = DeviceCreate.model_validate(
        {
            "device_id": args.device_id,
            "heartbeat_interval_s": args.interval,
            "heartbeat_grace_s": args.grace,
            "postcode": args.postcode,
            "model": args.model,
            "migration_stage": args.migration_stage,
            "credential": args.credential,
        }
    )
    new = NewDevice(**valid.model_dump())
    registered = await register_device(
        pool, new, actor=audit.CLI, certificates=certificates, csr_pem=_read(args.csr)
    )
    summary: dict[str, object] = {
        "device_id": new.device_id,
        "mqtt_password": registered.mqtt_password,
    }
    if registered.certificate is not None:
        summary["certificate"] = _save(args.out, registered.certificate, certificates)
    return summary


async def _import(
    pool: Pool, args: argparse.Namespace, certificates: DeviceCertificates | None
) -> dict[str, object]:
    rows = parse_rows(args.file.read_text(encoding="utf-8-sig"))
    result = await import_devices(
        pool,
        rows,
        dry_run=args.dry_run,
        actor=audit.CLI,
        credentials=NoBrokerCredentials(),
        certificates=certificates,
    )
    results: list[dict[str, object]] = []
    for row in result.rows:
        entry: dict[str, object] = {
            "row": row.row,
            "device_id": row.device_id,
            "ok": row.ok,
            "errors": [asdict(e) for e in row.errors],
            "mqtt_password": row.mqtt_password,
        }
        if row.certificate is not None:
            entry["certificate"] = _save(args.out, row.certificate, certificates)
        results.append(entry)
    return {"dry_run": args.dry_run, "rows": len(rows), "ok": result.registered, "results": results}


async def _credentials(pool: Pool, device_id: str) -> dict[str, object]:
    async with pool.connection() as conn:
        await fetch_device(conn, device_id)  # DeviceNotFound for an unknown id
        found = await device_certificates(conn, device_id)
    now = datetime.now(UTC)
    return {
        "device_id": device_id,
        "certificates": [
            {**asdict(c), "serial": serial_hex(c.serial), "status": c.status(now)} for c in found
        ],
    }


def _read(path: Path | None) -> str | None:
    return path.read_text(encoding="ascii") if path is not None else None


def _save(
    out: Path, issued: IssuedCertificate, certificates: DeviceCertificates | None = None
) -> dict[str, object]:
    """Write one device's bundle under `out`; what was written, without the key itself."""
    folder = out / issued.device_id / serial_hex(issued.serial)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"certificate.pem": issued.certificate_pem}
    if certificates is not None:
        files["device-ca.pem"] = certificates.ca.certificate_pem
        if certificates.broker_ca_pem:
            files["broker-ca.pem"] = certificates.broker_ca_pem
    for name, text in files.items():
        _write_new(folder / name, text, 0o644)
    if issued.private_key_pem is not None:
        _write_new(folder / "private-key.pem", issued.private_key_pem, 0o600)
    return {
        "serial": serial_hex(issued.serial),
        "not_after": issued.not_after.isoformat(),
        "folder": str(folder),
    }


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create the file (never overwrite a bundle: it may be the only copy of a key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
