"""Registering the fleet through the API (concurrently), or attaching to a fleet file.

The fleet file (JSON, mode 0600: it holds MQTT passwords) lists every device with its password
or, when the backend issues device certificates, the paths of its certificate files (kept
beside it: simulators/certificates.py), and its scenario group, so `telecare simulate --attach
FILE` runs the same devices again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from telecare.protocol.messages import is_valid_device_id
from telecare.simulators.api_client import Api, ApiError
from telecare.simulators.certificates import CertificateFolder
from telecare.simulators.scenario import Scenario
from telecare.simulators.scenario_errors import ScenarioError

log = logging.getLogger(__name__)

REGISTER_CONCURRENCY = 16


@dataclass(frozen=True)
class FleetDevice:
    device_id: str
    group: str
    postcode: str | None
    network: str
    password: str | None = None
    # With device certificates: the files the hub connects with (no password then); `ca_file`
    # is the broker CA of the registration's bundle (None: TELECARE_MQTT_CA_FILE).
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class Registered:
    """What the registry says about a device: the ground truth's starting point."""

    device: FleetDevice
    interval_s: int
    grace_s: int | None
    stage: str
    stage_changed_at: float
    district: str | None
    # A device that existed before this run (--attach, or an id already registered):
    last_heartbeat_at: float | None = None
    power: str | None = None


def plan_fleet(scenario: Scenario, prefix: str) -> list[FleetDevice]:
    """Device ids, postcodes and bearers for every group (round robin over the group's lists)."""
    fleet = []
    for group in scenario.groups:
        for n in range(group.devices):
            device_id = f"{prefix}-{group.name}-{n + 1:04d}"
            if not is_valid_device_id(device_id):
                raise ScenarioError(
                    f"device id {device_id!r} breaks the id pattern of docs/PROTOCOL.md"
                )
            fleet.append(
                FleetDevice(
                    device_id,
                    group.name,
                    group.postcodes[n % len(group.postcodes)],
                    group.networks[n % len(group.networks)],
                )
            )
    return fleet


def write_fleet_file(path: Path, api_url: str, devices: list[FleetDevice]) -> None:
    data = {"api_url": api_url, "devices": [asdict(d) for d in devices]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    path.chmod(0o600)  # an existing file keeps its mode on O_CREAT


def read_fleet_file(path: Path) -> list[FleetDevice]:
    try:
        data = json.loads(path.read_text())
        return [FleetDevice(**d) for d in data["devices"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScenarioError(f"cannot read fleet file {path}: {exc}") from None


async def register_fleet(
    api: Api,
    scenario: Scenario,
    devices: list[FleetDevice],
    *,
    attach: bool,
    certificates: CertificateFolder,
    on_registered: Callable[[Registered], None] | None = None,
) -> list[Registered]:
    """Register each device (or, attaching, read it back); bounded concurrency.

    A certificate bundle in the answer is written to `certificates`; `on_registered` is called
    for each device as soon as the registry has it.
    """
    groups = {g.name: g for g in scenario.groups}
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)
    renew = Renewal(
        rotate=await api.has("post", "/devices/{device_id}/credentials"),
        reissue=await api.has("post", "/devices/{device_id}/certificate"),
        folder=certificates,
    )

    async def one(device: FleetDevice) -> Registered:
        async with gate:
            registered = await register_one(device)
        if on_registered is not None:
            on_registered(registered)
        return registered

    async def register_one(device: FleetDevice) -> Registered:
        if attach:
            return _registered(device, await api.get(f"/devices/{device.device_id}"))
        group = groups[device.group]
        body: dict[str, Any] = {
            "device_id": device.device_id,
            "heartbeat_interval_s": group.heartbeat_interval_s,
            "heartbeat_grace_s": group.heartbeat_grace_s,
            "model": "simulator",
            "manufacturer": "telecare-sim",
            "postcode": device.postcode,
            "migration_stage": group.migration_stage,
        }
        response = await api.post("/devices", body)
        if response.status_code == httpx.codes.CREATED:
            answer = response.json()
            if answer.get("certificate"):
                return _registered(certificates.keep(device, answer["certificate"]), answer)
            return _registered(replace(device, password=answer["mqtt_password"]), answer)
        if response.status_code != httpx.codes.CONFLICT:
            raise ApiError(f"registering {device.device_id}", response)
        return await _reuse(api, device, renew)

    return list(await asyncio.gather(*(one(d) for d in devices)))


@dataclass(frozen=True)
class Renewal:
    """What a backend offers for a device registered before: a new password, a new
    certificate (which revokes the old one), or neither."""

    rotate: bool
    reissue: bool
    folder: CertificateFolder


async def _reuse(api: Api, device: FleetDevice, renew: Renewal) -> Registered:
    """An id already registered: take it as the registry has it, with a fresh certificate or
    password if we can (a 409 to the certificate: the backend does not issue them)."""
    if renew.reissue:
        response = await api.post(f"/devices/{device.device_id}/certificate", {})
        if response.is_success:
            device = renew.folder.keep(device, response.json())
        elif response.status_code != httpx.codes.CONFLICT:
            raise ApiError(f"re-issuing the certificate of {device.device_id}", response)
    if device.cert_file is None and renew.rotate:
        response = await api.post(f"/devices/{device.device_id}/credentials")
        if response.is_success:
            device = replace(device, password=response.json().get("mqtt_password", device.password))
    log.info("device already registered, reusing it device=%s", device.device_id)
    return _registered(device, await api.get(f"/devices/{device.device_id}"))


def _registered(device: FleetDevice, answer: dict[str, Any]) -> Registered:
    return Registered(
        device=device,
        interval_s=int(answer["heartbeat_interval_s"]),
        grace_s=answer.get("heartbeat_grace_s"),
        stage=str(answer["migration_stage"]),
        stage_changed_at=_time(answer["stage_changed_at"]),
        district=answer.get("postcode_district"),
        last_heartbeat_at=_time(answer["last_heartbeat_at"])
        if answer.get("last_heartbeat_at")
        else None,
        power=answer.get("power"),
    )


def _time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
