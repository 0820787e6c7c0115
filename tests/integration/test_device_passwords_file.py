"""Devices that cannot present a client certificate, on the shipped production broker: a
password device registered through the API connects on the password listener once the backend
has rendered the password file and reloaded the broker; rotation and decommissioning close its
connection and refuse the old password; certificate devices are not disturbed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.devices import ca_setup
from telecare.mqtt.client import MqttConnection, MqttError, connect
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import api_client, wait_for

DEADLINE_S = 20


@pytest.fixture
def production_broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(production=True) as running:
        yield running


@pytest.fixture
async def api(
    production_broker: PrivateBroker, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    broker = production_broker
    ca = broker.ca
    assert ca is not None
    cert, key = ca.services[ca_setup.API]
    production = settings.model_copy(
        update={
            "mqtt_url": broker.url,
            "mqtt_ca_file": str(ca.broker_ca_cert),
            "mqtt_cert_file": str(cert),
            "mqtt_key_file": str(key),
            "broker_credentials": "certificates",
            "device_ca_cert_file": str(ca.device_ca_cert),
            "device_ca_key_file": str(ca.device_ca_key),
            "device_crl_file": str(ca.device_crl),
            "broker_password_file": str(ca.device_passwords),
            "broker_reload_command": f"kill -HUP {broker.pid}",
        }
    )
    async with Service(production, {"api"}) as service:
        await service.wait_ready()
        async with await api_client(service, Role.ADMIN) as client:
            yield client


async def _register(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"device_id": f"pw-{uuid.uuid4().hex[:10]}", "heartbeat_interval_s": 60, **fields}
    answer = await api.post("/devices", json=body)
    assert answer.status_code == 201, answer.text
    registered: dict[str, Any] = answer.json()
    return registered


async def _connect(broker: PrivateBroker, device_id: str, password: str) -> MqttConnection:
    return await connect(
        broker.password_address(device_id, password),
        client_id="ignored",  # the broker makes it the username
        username=device_id,
        password=password,
        timeout_s=DEADLINE_S,
    )


async def _connects_within(broker: PrivateBroker, device_id: str, password: str) -> MqttConnection:
    async def attempt() -> MqttConnection | None:
        try:
            return await _connect(broker, device_id, password)
        except MqttError:
            return None

    return await wait_for(attempt, within_s=DEADLINE_S, what=f"{device_id} let in")


async def _refused(broker: PrivateBroker, device_id: str, password: str) -> None:
    with pytest.raises(MqttError):
        connection = await _connect(broker, device_id, password)
        await connection.disconnect()


async def test_a_password_device_gets_in_and_is_cut_off_by_rotation_and_decommissioning(
    production_broker: PrivateBroker, api: httpx.AsyncClient
) -> None:
    broker = production_broker
    device = await _register(api, credential="password")
    device_id, password = device["device_id"], device["mqtt_password"]
    assert device["certificate"] is None and device["credential_kind"] == "password"
    first = await _connects_within(broker, device_id, password)
    await _refused(broker, device_id, "not-the-password")

    rotated = (await api.post(f"/devices/{device_id}/credentials")).json()["mqtt_password"]
    async with asyncio.timeout(DEADLINE_S):  # the reload closes the old password's connection
        await first.closed
    second = await _connects_within(broker, device_id, rotated)
    await _refused(broker, device_id, password)

    assert (await api.delete(f"/devices/{device_id}")).is_success
    async with asyncio.timeout(DEADLINE_S):
        await second.closed
    await _refused(broker, device_id, rotated)


async def test_a_certificate_device_cannot_use_the_password_listener(
    production_broker: PrivateBroker, api: httpx.AsyncClient
) -> None:
    broker = production_broker
    device = await _register(api)  # the default here: a certificate
    assert device["credential_kind"] == "certificate"
    await _refused(broker, device["device_id"], device["mqtt_password"])


async def test_passwords_need_the_password_listener(certified_admin: httpx.AsyncClient) -> None:
    """Where TELECARE_BROKER_PASSWORD_FILE is not set every device needs a certificate."""
    answer = await certified_admin.post(
        "/devices",
        json={"device_id": f"pw-{uuid.uuid4().hex[:10]}", "heartbeat_interval_s": 60,
              "credential": "password"},
    )  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "credential"]


async def test_a_password_device_has_no_certificate_to_reissue(api: httpx.AsyncClient) -> None:
    device = await _register(api, credential="password")
    answer = await api.post(f"/devices/{device['device_id']}/certificate", json={})
    assert answer.status_code == 409
    assert "password" in answer.json()["detail"]
