"""Per-device credentials enforced by a real Mosquitto with the dynamic-security plugin."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import httpx
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from telecare.api.tokens import Role
from telecare.devices.credentials import DeviceSecret
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import alarm, api_client, heartbeat, topic, wait_for


@pytest.fixture
async def dynsec_admin(dynsec_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(dynsec_service, Role.ADMIN) as client:
        yield client


class Broker:
    """Connecting to a dynamic-security broker as a device, or as the backend."""

    def __init__(self, broker: PrivateBroker) -> None:
        self.broker = broker

    def device(self, device_id: str, password: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.broker.port,
            identifier=device_id,
            username=device_id,
            password=password,
        )

    def backend(self) -> aiomqtt.Client:
        address = self.broker.address
        return aiomqtt.Client(
            address.host,
            address.port,
            identifier=f"test-watch-{uuid.uuid4().hex[:6]}",
            username=address.username,
            password=address.password,
        )

    async def refused(self, device_id: str, password: str) -> bool:
        try:
            async with self.device(device_id, password):
                return False
        except aiomqtt.MqttError:
            return True

    @asynccontextmanager
    async def held(self, device_id: str, password: str) -> AsyncIterator[asyncio.Task[None]]:
        """A connection kept open; the task ends when the broker closes it."""
        async with self.device(device_id, password) as client:
            await client.subscribe(topic(device_id, "ack"), qos=1)

            async def until_closed() -> None:
                async for _ in client.messages:
                    pass

            task = asyncio.create_task(until_closed(), name=f"test.held[{device_id}]")
            try:
                yield task
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def _register(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"device_id": f"d-{uuid.uuid4().hex[:10]}", "heartbeat_interval_s": 60, **fields}
    response = await api.post("/devices", json=body)
    assert response.status_code == 201, response.text
    device: dict[str, Any] = response.json()
    return device


async def _heartbeat_stored(api: httpx.AsyncClient, device_id: str) -> None:
    async def stored() -> bool:
        body = (await api.get(f"/devices/{device_id}")).json()
        return body["last_heartbeat_at"] is not None

    await wait_for(stored, what=f"heartbeat of {device_id} stored")


async def test_a_device_publishes_and_reads_only_under_its_own_id(
    dynsec_service: Service, dynsec_admin: httpx.AsyncClient, dynsec_broker: PrivateBroker
) -> None:
    broker = Broker(dynsec_broker)
    me = await _register(dynsec_admin)
    victim = await _register(dynsec_admin)
    mine, theirs = me["device_id"], victim["device_id"]

    async with broker.backend() as watcher:
        await watcher.subscribe("telecare/v1/#", qos=1)
        async with broker.device(mine, me["mqtt_password"]) as device:
            [granted] = await device.subscribe(topic(theirs, "ack"), qos=1)
            assert isinstance(granted, ReasonCode) and granted.is_failure  # not its acks
            await device.publish(topic(theirs, "heartbeat"), json.dumps(heartbeat()), qos=1)
            await device.publish(topic(theirs, "alarm"), json.dumps(alarm("fall")), qos=1)
            await device.publish(topic(mine, "heartbeat"), json.dumps(heartbeat()), qos=1)
        async with asyncio.timeout(15):
            seen = [m.topic.value async for m in _until(watcher, topic(mine, "heartbeat"))]
    assert seen == [topic(mine, "heartbeat")]  # the forged messages never got through

    await _heartbeat_stored(dynsec_admin, mine)
    assert (await dynsec_admin.get(f"/devices/{theirs}")).json()["last_heartbeat_at"] is None
    assert (await dynsec_admin.get("/alarms", params={"device_id": theirs})).json()["items"] == []

    async with broker.device(mine, me["mqtt_password"]) as device:
        await device.subscribe(topic(mine, "ack"), qos=1)
        sent = alarm("pendant")
        await device.publish(topic(mine, "alarm"), json.dumps(sent), qos=1)
        async with asyncio.timeout(15):
            reply = await anext(device.messages)
    assert isinstance(reply.payload, bytes)
    ack = json.loads(reply.payload)
    assert (ack["msg_id"], ack["result"]) == (sent["msg_id"], "accepted")
    assert await broker.refused(mine, "not-the-password")
    assert await broker.refused(theirs, me["mqtt_password"])


async def _until(client: aiomqtt.Client, last_topic: str) -> AsyncIterator[aiomqtt.Message]:
    async for message in client.messages:
        yield message
        if message.topic.value == last_topic:
            return


async def test_decommissioning_disconnects_the_device_and_locks_it_out(
    dynsec_service: Service, dynsec_admin: httpx.AsyncClient, dynsec_broker: PrivateBroker
) -> None:
    broker = Broker(dynsec_broker)
    device = await _register(dynsec_admin)
    device_id, password = device["device_id"], device["mqtt_password"]
    async with broker.held(device_id, password) as connection:
        assert (await dynsec_admin.delete(f"/devices/{device_id}")).status_code == 200
        async with asyncio.timeout(15):
            with pytest.raises(aiomqtt.MqttError):
                await connection
    assert await broker.refused(device_id, password)


async def test_after_rotation_only_the_new_password_works(
    dynsec_service: Service, dynsec_admin: httpx.AsyncClient, dynsec_broker: PrivateBroker
) -> None:
    broker = Broker(dynsec_broker)
    device = await _register(dynsec_admin)
    device_id, old = device["device_id"], device["mqtt_password"]
    async with broker.held(device_id, old) as connection:
        rotated = await dynsec_admin.post(f"/devices/{device_id}/credentials")
        assert rotated.status_code == 200, rotated.text
        async with asyncio.timeout(15):
            with pytest.raises(aiomqtt.MqttError):
                await connection  # the broker closed the session of the old password
    new = rotated.json()["mqtt_password"]
    assert await broker.refused(device_id, old)
    async with broker.device(device_id, new) as client:
        await client.publish(topic(device_id, "heartbeat"), json.dumps(heartbeat()), qos=1)
    await _heartbeat_stored(dynsec_admin, device_id)

    # A broker that lost the device (e.g. restored from an old file): rotation makes it again.
    assert dynsec_service.dynsec is not None
    await dynsec_service.dynsec.remove(device_id)
    assert await broker.refused(device_id, new)
    again = (await dynsec_admin.post(f"/devices/{device_id}/credentials")).json()
    async with broker.device(device_id, again["mqtt_password"]):
        pass


async def test_imported_devices_get_broker_clients_and_a_leftover_client_is_repaired(
    dynsec_service: Service, dynsec_admin: httpx.AsyncClient, dynsec_broker: PrivateBroker
) -> None:
    broker = Broker(dynsec_broker)
    prefix = f"imp-{uuid.uuid4().hex[:6]}"
    leftover = f"{prefix}-2"  # as if a registration reached the broker but not the database
    assert dynsec_service.dynsec is not None
    assert await dynsec_service.dynsec.add([DeviceSecret(leftover, "stale-password")]) == {}
    text = f"device_id,heartbeat_interval_s\n{prefix}-1,60\n{leftover},60\n"
    response = await dynsec_admin.post(
        "/devices/import", content=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, True]
    for result in results:
        async with broker.device(result["device_id"], result["mqtt_password"]) as client:
            await client.publish(topic(result["device_id"], "heartbeat"), json.dumps(heartbeat()))
    assert await broker.refused(leftover, "stale-password")
