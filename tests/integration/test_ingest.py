"""A device's messages travel through the real broker into the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg

from telecare.mqtt.client import connect
from telecare.service import Service
from tests.support import Devices, Mqtt, alarm, heartbeat, topic, wait_for


async def test_heartbeat_is_stored_and_device_turns_online(
    service: Service, admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device = await devices.register()
    device_id = device["device_id"]
    assert device["status"] == "never_seen"

    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(battery_pct=55, power="battery"))

    async def online() -> dict[str, Any] | None:
        body: dict[str, Any] = (await admin.get(f"/devices/{device_id}")).json()
        return body if body["status"] == "online" else None

    body = await wait_for(online, what="device online")
    assert body["battery_pct"] == 55
    assert body["power"] == "battery"
    assert body["last_heartbeat_at"] is not None
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM heartbeats WHERE device_id = %s", [device_id]
        )
        assert await cur.fetchone() == (1,)


async def _send_alarm_and_read_ack(mqtt: Mqtt, device_id: str, payload: dict[str, Any]) -> Any:
    """Publish an alarm as the device and return the first ack the backend sends for it."""
    async with mqtt.client() as client:
        await client.subscribe(topic(device_id, "ack"), qos=1)
        await client.publish(topic(device_id, "alarm"), json.dumps(payload), qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                return json.loads(message.payload)
    raise AssertionError("no ack")


async def _alarm_rows(service: Service, device_id: str, msg_id: str) -> int:
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM alarms WHERE device_id = %s AND msg_id = %s", [device_id, msg_id]
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_alarm_is_acknowledged_after_commit_and_repeat_is_duplicate(
    service: Service, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    payload = alarm("fall")

    ack = await _send_alarm_and_read_ack(mqtt, device_id, payload)
    assert (ack["msg_id"], ack["result"]) == (payload["msg_id"], "accepted")
    assert await _alarm_rows(service, device_id, payload["msg_id"]) == 1  # committed before ack

    repeat = await _send_alarm_and_read_ack(mqtt, device_id, payload)
    assert (repeat["msg_id"], repeat["result"]) == (payload["msg_id"], "duplicate")
    assert await _alarm_rows(service, device_id, payload["msg_id"]) == 1


async def test_alarm_is_not_acknowledged_while_the_database_cannot_store_it(
    service: Service, devices: Devices, database_url: str, mqtt: Mqtt
) -> None:
    """A fault: the alarms table is locked, so the insert cannot commit. No ack may go out
    until it does; then the alarm is stored once and acknowledged `accepted`."""
    device_id = (await devices.register())["device_id"]
    payload = alarm("smoke")
    blocker = await psycopg.AsyncConnection.connect(database_url)
    await blocker.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")
    try:
        async with mqtt.client() as client:
            await client.subscribe(topic(device_id, "ack"), qos=1)
            await client.publish(topic(device_id, "alarm"), json.dumps(payload), qos=1)
            acks: list[dict[str, Any]] = []

            async def collect() -> None:
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    acks.append(json.loads(message.payload))

            collector = asyncio.create_task(collect())
            try:
                await asyncio.sleep(1.5)  # the ack must NOT arrive in this window
                assert acks == [], "alarm acknowledged before it was committed"
                await blocker.rollback()  # the database takes writes again
                await wait_for(lambda: _ready(acks), what="ack after commit")
            finally:
                collector.cancel()
        assert acks[0] == {**acks[0], "msg_id": payload["msg_id"], "result": "accepted"}
        assert await _alarm_rows(service, device_id, payload["msg_id"]) == 1
    finally:
        await blocker.close()


async def _ready(acks: list[dict[str, Any]]) -> bool:
    return bool(acks)


BAD_INPUTS = [
    ("heartbeat", b"{not json", "invalid_json"),
    ("heartbeat", b"\xff\xfe", "invalid_json"),
    ("heartbeat", b"[1, 2]", "schema"),
    ("heartbeat", json.dumps({**heartbeat(), "seq": "seven"}).encode(), "schema"),
    ("heartbeat", json.dumps({**heartbeat(), "battery_pct": 140}).encode(), "schema"),
    ("heartbeat", json.dumps({**heartbeat(), "ts": "yesterday"}).encode(), "schema"),
    ("heartbeat", json.dumps({**heartbeat(), "pad": "x" * 5000}).encode(), "oversized"),
    ("alarm", json.dumps({**alarm(), "event": "explosion"}).encode(), "schema"),
    ("status", json.dumps({"state": "sleepy"}).encode(), "schema"),
]


async def test_each_kind_of_bad_input_is_quarantined_and_the_next_message_goes_through(
    service: Service, admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    for kind, payload, _ in BAD_INPUTS:
        await mqtt.publish(topic(device_id, kind), payload)
    stranger = f"ghost-{uuid.uuid4().hex[:8]}"
    await mqtt.publish(topic(stranger, "heartbeat"), heartbeat())
    await mqtt.publish(f"telecare/v1/{device_id}/selfie", b"{}")
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())

    async def quarantined() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (
            await admin.get("/quarantine", params={"limit": 1000})
        ).json()["items"]
        mine = [
            q for q in items if q["device_id"] in (device_id, stranger) or device_id in q["topic"]
        ]
        return mine if len(mine) >= len(BAD_INPUTS) + 2 else None

    mine = await wait_for(quarantined, what="every bad message quarantined")
    reasons = sorted(q["reason"] for q in mine)
    expected = sorted([r for _, _, r in BAD_INPUTS] + ["unregistered_device", "bad_topic"])
    assert reasons == expected
    assert any("seq" in (q["detail"] or "") for q in mine), "schema errors name the field"

    async def online() -> bool:
        return bool((await admin.get(f"/devices/{device_id}")).json()["status"] == "online")

    await wait_for(online, what="valid heartbeat after bad ones")
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{service.api_url}/metrics")).text
    assert 'telecare_messages_rejected_total{reason="oversized"}' in metrics


async def test_alarm_from_unregistered_device_is_rejected(service: Service, mqtt: Mqtt) -> None:
    ack = await _send_alarm_and_read_ack(mqtt, f"ghost-{uuid.uuid4().hex[:8]}", alarm("pendant"))
    assert ack["result"] == "rejected"
    assert ack["reason"] == "unregistered_device"


async def test_a_decommissioned_device_is_refused_and_told_why(
    service: Service, admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    assert (await admin.delete(f"/devices/{device_id}")).status_code == 200

    async def refused() -> Any:
        ack = await _send_alarm_and_read_ack(mqtt, device_id, alarm("pendant"))
        return ack if ack["reason"] == "decommissioned_device" else None

    ack = await wait_for(refused, what="the alarm refused as decommissioned")
    assert ack["result"] == "rejected"
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())

    async def quarantined() -> list[str]:
        items = (await admin.get("/quarantine", params={"limit": 1000})).json()["items"]
        return sorted(q["reason"] for q in items if q["device_id"] == device_id)

    reasons = await wait_for(quarantined, what="the heartbeat quarantined")
    assert set(reasons) == {"decommissioned_device"}
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM heartbeats WHERE device_id = %(d)s),"
            " (SELECT count(*) FROM alarms WHERE device_id = %(d)s)",
            {"d": device_id},
        )
        assert await cur.fetchone() == (0, 0)


async def test_stored_alarm_is_listed_and_announced_as_an_event(
    service: Service, operator: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    payload = alarm("smoke")
    await _send_alarm_and_read_ack(mqtt, device_id, payload)

    listed = (await operator.get("/alarms", params={"device_id": device_id})).json()["items"]
    assert [(a["msg_id"], a["event"], a["severity"], a["state"]) for a in listed] == [
        (payload["msg_id"], "smoke", "critical", "open")
    ]
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, action, state FROM events WHERE entity_id = %s AND kind = 'alarm'",
            [listed[0]["id"]],
        )
        assert await cur.fetchall() == [("alarm", "created", "open")]


async def test_a_burst_from_devices_the_ingest_has_not_heard_of_yet_is_all_stored(
    service: Service,
) -> None:
    """Devices registered behind the ingest's back (no change notification): every message
    waits for its device's one lookup instead of being dropped when lookups pile up."""
    tag = uuid.uuid4().hex[:8]
    device_ids = [f"burst-{tag}-{n:02d}" for n in range(40)]
    async with service.pool.connection() as db:
        await db.execute(
            "INSERT INTO devices (device_id, heartbeat_interval_s, mqtt_password_hash)"
            " SELECT unnest(%s::text[]), 60, 'x'",
            [device_ids],
        )
    beats_each = 25
    device = await connect(service.settings.broker(), client_id=f"burst-{tag}")
    try:
        acked = [
            device.publish(
                topic(device_id, "heartbeat"),
                json.dumps(heartbeat(msg_id=f"m{n}", seq=n)).encode(),
                qos=1,
            )
            for n in range(beats_each)
            for device_id in device_ids
        ]
        await asyncio.gather(*acked)
    finally:
        await device.disconnect()

    async def stored() -> bool:
        async with service.pool.connection() as db:
            cur = await db.execute(
                "SELECT count(*) FROM heartbeats WHERE device_id = ANY(%s)", [device_ids]
            )
            row = await cur.fetchone()
        return row == (len(device_ids) * beats_each,)

    await wait_for(stored, what="every heartbeat of the burst stored")
    dropped = service.metrics.write_dropped.labels("heartbeats", "lookups_busy")._value.get()
    assert dropped == 0


async def test_heartbeat_text_is_stored_exactly_as_sent(
    service: Service, devices: Devices, mqtt: Mqtt
) -> None:
    """Backslashes, tabs and newlines in a device's text survive the batch write unchanged."""
    device_id = (await devices.register())["device_id"]
    msg_id = "a\\b\tc\nd\re\\N"
    peripherals = [{"id": "p\t1\\", "kind": "pendant é", "battery_pct": None, "last_seen_s": 3}]
    await mqtt.publish(
        topic(device_id, "heartbeat"),
        heartbeat(msg_id=msg_id, firmware="fw\\2\t", peripherals=peripherals),
    )

    async def stored() -> tuple[Any, ...] | None:
        async with service.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT msg_id, firmware, peripherals FROM heartbeats WHERE device_id = %s",
                [device_id],
            )
            return await cur.fetchone()

    assert await wait_for(stored, what="the heartbeat stored") == (msg_id, "fw\\2\t", peripherals)
