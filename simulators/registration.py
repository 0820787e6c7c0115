"""Register simulated devices through the HTTP API (PROTOCOL.md section 4)."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

SIM_POSTCODES = ("SW1A 1AA", "SW1A 2AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "LS1 4AP")


class RegistrationError(RuntimeError):
    """The API refused to register a device for a reason other than a conflict."""


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:04d}" for n in range(1, count + 1)]


async def register_devices(
    api_url: str, token: str | None, ids: list[str], interval_s: int
) -> dict[str, str | None]:
    """Register each device; map id to its MQTT password (None when it already existed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    passwords: dict[str, str | None] = {}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10.0) as http:
        for index, device_id in enumerate(ids):
            body = {
                "device_id": device_id,
                "heartbeat_interval_s": interval_s,
                "model": "simulator",
                "manufacturer": "telecare-sim",
                "postcode": SIM_POSTCODES[index % len(SIM_POSTCODES)],
            }
            response = await http.post("/api/v1/devices", json=body)
            if response.status_code == httpx.codes.CREATED:
                password = response.json().get("mqtt_password")
                passwords[device_id] = password if isinstance(password, str) else None
            elif response.status_code == httpx.codes.CONFLICT:
                log.info("device %s already registered: reusing it", device_id)
                passwords[device_id] = None
            else:
                raise RegistrationError(
                    f"registering {device_id}: HTTP {response.status_code} {response.text[:200]}"
                )
    return passwords
