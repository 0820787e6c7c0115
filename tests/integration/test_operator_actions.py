"""Operators acknowledge and resolve alerts and alarms; who, when and the note are kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from telecare.alerts.decisions import Raise, device_subject
from telecare.alerts.types import AlertType
from telecare.alerts.writer import write_actions
from telecare.service import Service
from tests.support import Devices, Mqtt, alarm, topic, wait_for


async def _stored_alarm(admin: httpx.AsyncClient, mqtt: Mqtt, device_id: str) -> int:
    await mqtt.publish(topic(device_id, "alarm"), json.dumps(alarm("fall")))

    async def listed() -> list[dict[str, object]]:
        items: list[dict[str, object]] = (
            await admin.get("/alarms", params={"device_id": device_id})
        ).json()["items"]
        return items

    items = await wait_for(listed, what="alarm stored")
    alarm_id = items[0]["id"]
    assert isinstance(alarm_id, int)
    return alarm_id


async def test_operator_acknowledges_then_resolves_an_alarm_with_notes(
    service: Service,
    admin: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
    mqtt: Mqtt,
) -> None:
    alarm_id = await _stored_alarm(admin, mqtt, (await devices.register())["device_id"])

    acked = await operator.post(f"/alarms/{alarm_id}/ack", json={"note": "calling the resident"})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "test-operator")
    assert (await operator.post(f"/alarms/{alarm_id}/ack")).status_code == 409

    resolved = (await operator.post(f"/alarms/{alarm_id}/resolve", json={"note": "fine"})).json()
    assert resolved["state"] == "resolved"
    assert [(h["action"], h["actor"], h["note"]) for h in resolved["history"]] == [
        ("acknowledged", "test-operator", "calling the resident"),
        ("resolved", "test-operator", "fine"),
    ]
    assert (await operator.post(f"/alarms/{alarm_id}/resolve")).status_code == 409
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor, action FROM audit_log WHERE target_type = 'alarm' AND target_id = %s"
            " ORDER BY id",
            [str(alarm_id)],
        )
        assert await cur.fetchall() == [
            ("test-operator", "alarm.acknowledged"),
            ("test-operator", "alarm.resolved"),
        ]


async def test_operator_resolves_an_open_alert_and_it_counts_as_taken(
    service: Service, operator: httpx.AsyncClient, devices: Devices
) -> None:
    device_id = (await devices.register())["device_id"]
    subject = device_subject(AlertType.BATTERY_LOW, device_id)
    [raised] = await write_actions(
        service.pool,
        [Raise(subject, AlertType.BATTERY_LOW, datetime.now(UTC), device_id=device_id)],
    )
    response = await operator.post(f"/alerts/{raised.alert_id}/resolve", json={"note": "replaced"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["resolved_by"], body["acknowledged_by"]) == (
        "resolved",
        "test-operator",
        "test-operator",
    )
    assert [h["action"] for h in body["history"]] == ["raised", "resolved"]


async def test_unknown_ids_are_404_and_technicians_may_not_act(
    admin: httpx.AsyncClient, technician: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    assert (await admin.post("/alarms/999999999/ack")).status_code == 404
    assert (await admin.post("/alerts/999999999/resolve")).status_code == 404
    assert (await admin.get("/alerts/999999999")).status_code == 404
    alarm_id = await _stored_alarm(admin, mqtt, (await devices.register())["device_id"])
    assert (await technician.post(f"/alarms/{alarm_id}/ack")).status_code == 403
    assert (await technician.get(f"/alarms/{alarm_id}")).status_code == 200


async def test_the_queue_lists_show_every_change_though_answers_are_kept(
    service: Service,
    admin: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
    mqtt: Mqtt,
) -> None:
    """The open alarms list is answered from memory between changes: a new alarm (heard of by
    notification) and an acknowledgement (made by this caller) each show at once."""
    device_id = (await devices.register())["device_id"]
    params = {"state": "open", "device_id": device_id}
    assert (await operator.get("/alarms", params=params)).json()["items"] == []
    assert (await operator.get("/alarms", params=params)).json()["items"] == []  # kept

    alarm_id = await _stored_alarm(admin, mqtt, device_id)

    async def listed_open() -> list[object]:
        items: list[object] = (await operator.get("/alarms", params=params)).json()["items"]
        return items

    await wait_for(listed_open, what="the new alarm in the kept list")
    assert (await operator.post(f"/alarms/{alarm_id}/ack")).status_code == 200
    assert (await operator.get("/alarms", params=params)).json()["items"] == []
