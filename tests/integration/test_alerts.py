"""A device that falls silent gets exactly one alert, resolved by its next heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.support import Devices, Mqtt, api_client, heartbeat, topic, wait_for


async def _alerts(api: httpx.AsyncClient, device_id: str, **filters: str) -> list[dict[str, Any]]:
    response = await api.get("/alerts", params={"device_id": device_id, **filters})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_silent_device_gets_one_heartbeat_missed_alert_resolved_by_next_heartbeat(
    service: Service, admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device = await devices.register(heartbeat_interval_s=10, heartbeat_grace_s=0)
    device_id = device["device_id"]
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(interval_s=10))

    async def raised() -> list[dict[str, Any]]:
        return await _alerts(admin, device_id, state="open")

    open_alerts = await wait_for(raised, within_s=20, what="heartbeat_missed alert")
    assert [(a["type"], a["severity"]) for a in open_alerts] == [("heartbeat_missed", "high")]

    async def overdue() -> bool:
        return bool((await admin.get(f"/devices/{device_id}")).json()["status"] == "overdue")

    await wait_for(overdue, within_s=2, what="device status overdue")

    # Another full window of silence: still one alert, not one per missed beat.
    assert service.engine is not None
    await wait_for(lambda: _still_overdue(service, device_id), within_s=15, what="a second window")
    assert len(await _alerts(admin, device_id)) == 1

    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(seq=2, interval_s=10))

    async def resolved() -> list[dict[str, Any]]:
        return await _alerts(admin, device_id, state="resolved")

    done = await wait_for(resolved, what="alert resolved")
    assert len(done) == 1
    assert done[0]["resolved_by"] == "device"
    # Other tests' silent devices share this database and its 4g area: an area outage may have
    # grouped the alert meanwhile, which is history too. Raised once, resolved once.
    actions = [h["action"] for h in done[0]["history"]]
    assert [a for a in actions if a in ("raised", "resolved")] == ["raised", "resolved"]
    assert len(await _alerts(admin, device_id)) == 1


async def _still_overdue(service: Service, device_id: str) -> bool:
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT now() - raised_at > interval '10 seconds' FROM alerts WHERE device_id = %s",
            [device_id],
        )
        row = await cur.fetchone()
    return bool(row and row[0])


async def test_after_a_restart_no_alert_is_raised_twice_and_silence_meanwhile_is_caught(
    settings: Settings,
) -> None:
    async with Service(settings) as first:
        await first.wait_ready()
        async with await api_client(first, Role.ADMIN) as admin:
            devices = Devices(admin)
            early = await devices.register(heartbeat_interval_s=10, heartbeat_grace_s=0)
            await wait_for(
                lambda: _alerts(admin, early["device_id"], state="open"),
                within_s=20,
                what="heartbeat_missed for a never-seen device",
            )
            # Registered now, overdue in 10 s: it falls silent while no engine runs.
            late = await devices.register(heartbeat_interval_s=10, heartbeat_grace_s=0)
    await asyncio.sleep(11)  # the engine is down past the late device's deadline
    async with Service(settings) as again:
        await again.wait_ready()
        async with await api_client(again, Role.ADMIN) as admin:
            raised = await wait_for(
                lambda: _alerts(admin, late["device_id"], state="open"),
                within_s=5,
                what="the alert of a device that fell silent while the engine was down",
            )
            assert len(await _alerts(admin, early["device_id"])) == 1
            assert [a["type"] for a in raised] == ["heartbeat_missed"]
