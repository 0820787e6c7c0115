"""Helpers for tests: unique devices, MQTT publishing, waiting for a condition with a deadline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiomqtt
import httpx

from telecare.alerts.certificate_expiry import check_certificate_expiry
from telecare.api.tokens import Role, create_token
from telecare.core.mqtt_url import BrokerAddress
from telecare.db.pool import Pool
from telecare.service import Service

T = TypeVar("T")


async def wait_for(
    check: Callable[[], Awaitable[T | None]], *, within_s: float = 10, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + within_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def heartbeat(msg_id: str | None = None, seq: int = 1, **fields: Any) -> dict[str, Any]:
    body = {
        "msg_id": msg_id or uuid.uuid4().hex[:12],
        "ts": now_iso(),
        "seq": seq,
        "interval_s": 60,
        "power": "mains",
        "battery_pct": 88,
        "signal_dbm": -71,
        "network": "4g",
    }
    body.update(fields)
    return body


def alarm(event: str = "fall", msg_id: str | None = None, seq: int = 1) -> dict[str, Any]:
    return {"msg_id": msg_id or uuid.uuid4().hex[:12], "ts": now_iso(), "seq": seq, "event": event}


def topic(device_id: str, kind: str) -> str:
    return f"telecare/v1/{device_id}/{kind}"


class Mqtt:
    """Publishing and listening as a device would, on the test session's private broker."""

    def __init__(self, broker: BrokerAddress) -> None:
        self.broker = broker

    def client(self, identifier: str | None = None, **kwargs: Any) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=identifier or f"test-{uuid.uuid4().hex[:8]}",
            **kwargs,
        )

    async def publish(
        self, topic_name: str, payload: dict[str, Any] | bytes | str, qos: int = 1
    ) -> None:
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        async with self.client() as client:
            await client.publish(topic_name, data, qos=qos)


class Devices:
    """Registers devices with ids no other test uses."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self._api = api

    async def register(self, **fields: Any) -> dict[str, Any]:
        body = {"device_id": f"t-{uuid.uuid4().hex[:10]}", "heartbeat_interval_s": 60}
        body.update(fields)
        response = await self._api.post("/devices", json=body)
        assert response.status_code == 201, response.text
        device: dict[str, Any] = response.json()
        return device


async def api_client(service: Service, role: Role) -> httpx.AsyncClient:
    """An HTTP client of the service's API holding a new token of `role`."""
    token = await create_token(service.pool, role=role, name=f"test-{role.value}")
    return httpx.AsyncClient(
        base_url=f"{service.api_url}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


async def look_at_expiry(pool: Pool, now: datetime) -> None:
    """One look of our own (the service's hourly one may hold the lock at that moment)."""

    async def look() -> bool | None:
        return await check_certificate_expiry(pool, warning_days=30, now=now) is not None or None

    await wait_for(look, what="a look at certificate expiry")
