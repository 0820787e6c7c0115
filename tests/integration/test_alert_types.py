"""Each alert type of docs/ALERTS.md raised and resolved end to end: real MQTT, real database.

The service runs with small thresholds (an alarm target of 2 s, a flapping window of 60 s, area
outages from 3 devices) so each rule shows in seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.mqtt.client import connect
from telecare.mqtt.packets import Will
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import Devices, Mqtt, alarm, api_client, heartbeat, topic, wait_for

Alert = dict[str, Any]


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    fast = settings.model_copy(
        update={
            "alarm_ack_target_s": 2,
            "flapping_drops": 3,
            "flapping_window_s": 60,
            "area_min_devices": 3,
            "area_min_share": 0.0,
        }
    )
    async with Service(fast) as running:
        await running.wait_ready()
        yield running


@pytest.fixture
async def operator(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(service, Role.OPERATOR) as client:
        yield client


async def _alerts(api: httpx.AsyncClient, **filters: Any) -> list[Alert]:
    response = await api.get("/alerts", params=filters)
    assert response.status_code == 200, response.text
    items: list[Alert] = response.json()["items"]
    return items


async def _one(
    api: httpx.AsyncClient, device_id: str, alert_type: str, *, state: str = "open"
) -> Alert:
    """Wait for the device's single alert of that type in that state."""

    async def found() -> list[Alert]:
        alerts = await _alerts(api, device_id=device_id, type=alert_type)
        return [a for a in alerts if a["state"] == state]

    [alert] = await wait_for(found, within_s=15, what=f"{alert_type} {state} for {device_id}")
    return alert


async def _beat(mqtt: Mqtt, device_id: str, seq: int, **fields: Any) -> None:
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(seq=seq, **fields))


async def _types(api: httpx.AsyncClient, device_id: str) -> list[str]:
    return sorted(a["type"] for a in await _alerts(api, device_id=device_id))


async def test_migration_dropout_is_critical_and_resolved_by_the_next_heartbeat(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (
        await devices.register(
            heartbeat_interval_s=10, heartbeat_grace_s=0, migration_stage="in_progress"
        )
    )["device_id"]
    raised = await _one(admin, device_id, "migration_dropout")
    assert raised["severity"] == "critical"
    await _beat(mqtt, device_id, 1, interval_s=10)
    resolved = await _one(admin, device_id, "migration_dropout", state="resolved")
    assert resolved["resolved_by"] == "device"
    assert await _types(admin, device_id) == ["migration_dropout"]


async def test_a_last_will_raises_connection_lost_at_once_and_a_heartbeat_resolves_it(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt, broker: PrivateBroker
) -> None:
    device_id = (await devices.register())["device_id"]
    status = topic(device_id, "status")
    will = Will(status, b'{"state":"offline","reason":"lwt"}')
    hub = await connect(broker.address, client_id=device_id, will=will)
    await hub.publish(status, b'{"state":"online"}', retain=True)
    await hub.publish(topic(device_id, "heartbeat"), _json(heartbeat()))
    hub.abort()  # the network goes: no DISCONNECT, so the broker publishes the Last Will

    raised = await _one(admin, device_id, "connection_lost")
    assert (raised["severity"], raised["details"]["reason"]) == ("medium", "lwt")
    await _beat(mqtt, device_id, 2)
    resolved = await _one(admin, device_id, "connection_lost", state="resolved")
    assert resolved["resolved_by"] == "device"


async def test_mains_loss_and_low_battery_are_raised_once_and_resolved_on_recovery(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    await _beat(mqtt, device_id, 1, power="battery", battery_pct=30)
    await _one(admin, device_id, "mains_power_lost")
    await _beat(mqtt, device_id, 2, power="battery", battery_pct=15)
    low = await _one(admin, device_id, "battery_low")
    assert low["details"]["battery_pct"] == 15
    await _beat(mqtt, device_id, 3, power="battery", battery_pct=12)
    await _beat(mqtt, device_id, 4, power="mains", battery_pct=22)  # under the 25 % to clear
    mains = await _one(admin, device_id, "mains_power_lost", state="resolved")
    assert mains["resolved_by"] == "device"
    assert (await _one(admin, device_id, "battery_low"))["id"] == low["id"]
    await _beat(mqtt, device_id, 5, power="mains", battery_pct=26)
    await _one(admin, device_id, "battery_low", state="resolved")
    assert await _types(admin, device_id) == ["battery_low", "mains_power_lost"]


async def test_peripheral_alerts_name_the_peripherals_and_follow_their_changes(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]

    def peripherals(smoke_seen_s: int, pendant_seen_s: int, pendant_pct: int) -> list[Alert]:
        return [
            {"id": "smoke-1", "kind": "smoke", "battery_pct": 80, "last_seen_s": smoke_seen_s},
            {"id": "pend-1", "kind": "pendant", "battery_pct": pendant_pct, "last_seen_s": 5},
            {"id": "pend-2", "kind": "pendant", "battery_pct": 90, "last_seen_s": pendant_seen_s},
        ]

    await _beat(mqtt, device_id, 1, peripherals=peripherals(4000, 10, 10))
    lost = await _one(admin, device_id, "peripheral_lost")
    assert (lost["severity"], lost["details"]["peripherals"]) == ("high", ["smoke-1"])
    low = await _one(admin, device_id, "peripheral_battery_low")
    assert low["details"]["peripherals"] == ["pend-1"]

    await _beat(mqtt, device_id, 2, peripherals=peripherals(4060, 7200, 10))

    async def both_named() -> bool:
        alert = await _one(admin, device_id, "peripheral_lost")
        return bool(alert["details"]["peripherals"] == ["pend-2", "smoke-1"])

    await wait_for(both_named, what="a second lost peripheral in the open alert's details")
    await _beat(mqtt, device_id, 3, peripherals=peripherals(4120, 30, 10))

    async def one_named() -> bool:
        alert = await _one(admin, device_id, "peripheral_lost")
        return bool(alert["details"]["peripherals"] == ["smoke-1"])

    await wait_for(one_named, what="the pendant found again, the smoke detector still lost")
    await _beat(mqtt, device_id, 4, peripherals=peripherals(20, 20, 100))
    resolved = await _one(admin, device_id, "peripheral_lost", state="resolved")
    assert resolved["id"] == lost["id"]
    assert "details_changed" in [h["action"] for h in resolved["history"]]
    await _one(admin, device_id, "peripheral_battery_low", state="resolved")


async def test_an_alarm_nobody_takes_raises_alarm_unhandled_until_an_operator_does(
    admin: httpx.AsyncClient, operator: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    await mqtt.publish(topic(device_id, "alarm"), alarm("test"))  # technical: never unhandled
    await mqtt.publish(topic(device_id, "alarm"), alarm("fall"))
    unhandled = await _one(admin, device_id, "alarm_unhandled")
    assert unhandled["severity"] == "critical"
    assert unhandled["details"]["event"] == "fall"
    fall = unhandled["details"]["alarm_id"]
    assert (await operator.post(f"/alarms/{fall}/ack", json={"note": "rang"})).status_code == 200
    resolved = await _one(admin, device_id, "alarm_unhandled", state="resolved")
    assert resolved["resolved_by"] == "system"
    assert await _types(admin, device_id) == ["alarm_unhandled"]


async def test_a_flapping_device_gets_one_flapping_alert_instead_of_a_stream(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    status = topic(device_id, "status")
    for seq in range(1, 6):  # five drops and returns
        await mqtt.publish(status, {"state": "offline", "reason": "lwt"})
        await _beat(mqtt, device_id, seq)
    flapping = await _one(admin, device_id, "flapping")
    assert flapping["details"]["window_s"] == 60

    async def counted() -> bool:
        alert = await _one(admin, device_id, "flapping")
        return bool(alert["details"]["drops"] == 5 and alert["details"]["currently"] == "up")

    await wait_for(counted, what="every drop counted in the flapping alert")
    # The first two drops were alerts of their own; the rest are in the flapping alert only.
    assert await _types(admin, device_id) == ["connection_lost", "connection_lost", "flapping"]


async def test_many_devices_of_one_district_going_silent_show_as_one_area_outage(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    district = f"Z{uuid.uuid4().int % 90 + 9}"  # a district no other test uses
    ids = [(await devices.register(postcode=f"{district} 1AA"))["device_id"] for _ in range(4)]
    # Each on its own bearer, so that only the district is an area with many silent devices.
    bearers = dict(zip(ids, ["nb-iot", "lte-m", "ethernet", "pstn-adapter"], strict=True))
    for device_id in ids:
        await _beat(mqtt, device_id, 1, network=bearers[device_id])
    for device_id in ids:
        await mqtt.publish(topic(device_id, "status"), {"state": "offline", "reason": "lwt"})

    async def outage() -> list[Alert]:
        found = await _alerts(admin, type="area_outage", state="open")
        return [a for a in found if a["area"] == f"postcode:{district}"]

    [area] = await wait_for(outage, what="one area_outage for the district")
    assert (area["device_id"], area["severity"]) == (None, "critical")
    assert area["details"]["cause"] == "silence"

    async def grouped() -> list[Alert]:
        members = await _alerts(admin, group_id=area["id"])
        return members if len(members) == 4 else []

    await wait_for(grouped, what="the four connection_lost alerts grouped under it")
    top = {a["id"] for a in await _alerts(admin, top_level="true", state="open", limit=1000)}
    assert area["id"] in top
    assert not top & {a["id"] for a in await _alerts(admin, group_id=area["id"])}

    for seq, device_id in enumerate(ids[:2], start=2):  # two return: fewer than 3 still down
        await _beat(mqtt, device_id, seq, network=bearers[device_id])
    done = await _one_area(admin, area["id"], "resolved")
    assert done["resolved_by"] == "system"
    stragglers = [a for a in await _alerts(admin, state="open") if a["device_id"] in ids[2:]]
    assert len(stragglers) == 2 and all(a["group_id"] is None for a in stragglers)


async def test_decommissioning_resolves_every_open_alert_of_the_device(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    device_id = (await devices.register())["device_id"]
    await _beat(mqtt, device_id, 1, power="battery", battery_pct=5)
    await _one(admin, device_id, "battery_low")
    assert (await admin.delete(f"/devices/{device_id}")).status_code in (200, 204)
    resolved = await _one(admin, device_id, "battery_low", state="resolved")
    assert resolved["resolved_by"] == "system"
    await _one(admin, device_id, "mains_power_lost", state="resolved")


async def _one_area(api: httpx.AsyncClient, alert_id: int, state: str) -> Alert:
    async def found() -> Alert | None:
        alert: Alert = (await api.get(f"/alerts/{alert_id}")).json()
        return alert if alert["state"] == state else None

    return await wait_for(found, within_s=15, what=f"area alert {alert_id} {state}")


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
