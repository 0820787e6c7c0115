"""Hostile device input through the real broker: each message is refused with its reason (an
alarm gets a `rejected` ack saying why), and the ingest carries on with the next one."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from telecare.service import Service
from tests.support import Devices, Mqtt, alarm, heartbeat, topic, wait_for

NESTED = "[" * 1500 + "]" * 1500
HOSTILE_ALARMS: list[tuple[str, bytes, str]] = [
    (
        "deeply nested",
        json.dumps({**alarm(), "x": "@"}).replace('"@"', NESTED).encode(),
        "invalid_json",
    ),
    ("NUL in msg_id", json.dumps({**alarm(), "msg_id": "a\x00b"}).encode(), "schema"),
    ("NUL in detail", json.dumps({**alarm(), "detail": "help\x00"}).encode(), "schema"),
    ("seq over bigint", json.dumps({**alarm(), "seq": 2**64}).encode(), "schema"),
    (
        "after year 9999",
        json.dumps({**alarm(), "ts": "9999-12-31T23:59:59-12:00"}).encode(),
        "schema",
    ),
    ("not UTF-8", b'{"msg_id": "\xff\xfe", "event": "fall"}', "invalid_json"),
    ("lone surrogate", b'{"msg_id": "\\udc00", "ts": "2026-01-01T00:00:00Z"}', "invalid_json"),
    ("oversized", json.dumps({**alarm(), "pad": "x" * 5000}).encode(), "oversized"),
]


async def _acks(mqtt: Mqtt, device_id: str, payloads: list[bytes]) -> list[dict[str, Any]]:
    """Publish each payload as the device's alarm; the acks, in order, one per alarm."""
    async with mqtt.client() as client:
        await client.subscribe(topic(device_id, "ack"), qos=1)
        received: list[dict[str, Any]] = []
        for payload in payloads:
            await client.publish(topic(device_id, "alarm"), payload, qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    received.append(json.loads(message.payload))
                    break
    return received


async def test_hostile_alarms_are_rejected_with_the_reason_and_the_next_is_accepted(
    service: Service, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    good = alarm("fall")
    acks = await _acks(
        mqtt, device_id, [p for _, p, _ in HOSTILE_ALARMS] + [json.dumps(good).encode()]
    )
    got = [(a["result"], a.get("reason")) for a in acks]
    assert got == [("rejected", reason) for _, _, reason in HOSTILE_ALARMS] + [("accepted", None)]


async def test_wrong_device_clocks_are_stored_as_sent(
    service: Service, operator: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    """A clock never set (1970) or far ahead still raises the alarm: a person may need help."""
    device_id = (await devices.register())["device_id"]
    stamps = ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
    sent = [{**alarm("pendant"), "ts": ts} for ts in stamps]
    acks = await _acks(mqtt, device_id, [json.dumps(a).encode() for a in sent])
    assert [a["result"] for a in acks] == ["accepted"] * len(stamps)
    listed = (await operator.get("/alarms", params={"device_id": device_id})).json()["items"]
    assert sorted(a["device_ts"][:4] for a in listed) == ["0001", "1970", "9999"]


async def test_hostile_telemetry_is_quarantined_and_the_consumer_keeps_going(
    service: Service, admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    too_long = "d" + "x" * 200
    await mqtt.publish(
        topic(device_id, "heartbeat"), json.dumps({**heartbeat(), "x": "@"}).replace('"@"', NESTED)
    )
    await mqtt.publish(
        topic(device_id, "heartbeat"), json.dumps({**heartbeat(), "firmware": "\x00"})
    )
    await mqtt.publish(
        topic(device_id, "status"), json.dumps({"state": "online", "reason": "\x00"})
    )
    await mqtt.publish(topic(too_long, "heartbeat"), json.dumps(heartbeat()))
    await mqtt.publish(f"telecare/v1/{device_id}/heartbeat/extra", json.dumps(heartbeat()))
    await mqtt.publish(topic(device_id, "heartbeat"), json.dumps(heartbeat(battery_pct=42)))

    async def quarantined() -> list[dict[str, Any]] | None:
        items = (await admin.get("/quarantine", params={"limit": 1000})).json()["items"]
        mine = [q for q in items if device_id in q["topic"] or too_long in q["topic"]]
        return mine if len(mine) >= 5 else None

    mine = await wait_for(quarantined, what="each hostile message quarantined")
    assert sorted(q["reason"] for q in mine) == sorted(
        ["invalid_json", "schema", "schema", "bad_topic", "bad_topic"]
    )
    assert all(q["detail"] for q in mine), "every reject is explained"

    async def latest_battery() -> bool:
        body = (await admin.get(f"/devices/{device_id}")).json()
        return bool(body["battery_pct"] == 42)

    await wait_for(latest_battery, what="the valid heartbeat after the hostile ones")


async def test_an_unregistered_device_flooding_bad_topics_is_counted(
    service: Service, mqtt: Mqtt
) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    for n in range(50):
        await mqtt.publish(f"telecare/v1/{ghost}/{'x' * n}", b"{}")
    async with httpx.AsyncClient() as client:

        async def counted() -> bool:
            text = (await client.get(f"{service.api_url}/metrics")).text
            return 'telecare_messages_rejected_total{reason="bad_topic"}' in text

        await wait_for(counted, what="bad topics counted")
