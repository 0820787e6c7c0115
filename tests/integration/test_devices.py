"""The device registry as a technician uses it: list filters, changes, decommissioning."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from telecare.service import Service
from tests.support import Devices, Mqtt, heartbeat, topic, wait_for


async def _ids(api: httpx.AsyncClient, **params: Any) -> set[str]:
    response = await api.get("/devices", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return {d["device_id"] for d in response.json()["items"]}


async def test_list_filters_by_stage_district_model_firmware_and_status(
    admin: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    model = f"hub-{uuid.uuid4().hex[:6]}"
    scheduled = (await devices.register(model=model, migration_stage="scheduled"))["device_id"]
    in_leeds = (await devices.register(model=model, postcode="LS1 4AP"))["device_id"]
    heard = (await devices.register(model=model))["device_id"]
    await mqtt.publish(topic(heard, "heartbeat"), heartbeat(firmware=f"fw-{model}"))

    async def online() -> bool:
        return heard in await _ids(admin, status="online", model=model)

    await wait_for(online, what="device online")
    assert await _ids(admin, model=model) == {scheduled, in_leeds, heard}
    assert await _ids(admin, model=model, migration_stage="scheduled") == {scheduled}
    assert await _ids(admin, model=model, postcode_district="ls1") == {in_leeds}
    assert await _ids(admin, firmware=f"fw-{model}") == {heard}
    assert await _ids(admin, model=model, status="never_seen") == {scheduled, in_leeds}
    assert await _ids(admin, model=model, overdue_only=True) == set()
    bad = await admin.get("/devices", params={"status": "sleepy"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status"]
    forged = await admin.get("/devices", params={"cursor": "!!not-ours"})
    assert forged.status_code == 422
    assert forged.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_overdue_only_lists_devices_past_their_deadline_whatever_their_label(
    admin: httpx.AsyncClient, devices: Devices
) -> None:
    model = f"quiet-{uuid.uuid4().hex[:6]}"
    silent = await devices.register(model=model, heartbeat_interval_s=10, heartbeat_grace_s=0)
    await devices.register(model=model)  # 60 s interval: not overdue within this test

    async def overdue() -> set[str]:
        return await _ids(admin, model=model, overdue_only=True)

    assert await wait_for(overdue, within_s=30, what="overdue device") == {silent["device_id"]}
    device = (await admin.get(f"/devices/{silent['device_id']}")).json()
    assert device["status"] == "never_seen"  # never heard from, and past its deadline
    window = datetime.fromisoformat(device["heartbeat_deadline_at"]) - datetime.fromisoformat(
        device["stage_changed_at"]
    )
    assert window == timedelta(seconds=10)


async def test_patch_changes_fields_clears_optional_ones_and_audits_names_only(
    service: Service, admin: httpx.AsyncClient, technician: httpx.AsyncClient, devices: Devices
) -> None:
    device = await devices.register(serial="SN-1", address="1 High St", postcode="M1 1AE")
    path = f"/devices/{device['device_id']}"
    response = await technician.patch(
        path,
        json={
            "heartbeat_interval_s": 300,
            "serial": None,
            "address": "2 Low St",
            "postcode": "ls1 4ap",
        },
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["heartbeat_interval_s"], changed["serial"]) == (300, None)
    assert (changed["postcode"], changed["postcode_district"]) == ("LS1 4AP", "LS1")
    assert changed["stage_changed_at"] == device["stage_changed_at"]  # nothing restarted

    entries = (
        await admin.get(
            "/audit", params={"target_id": device["device_id"], "action": "device.update"}
        )
    ).json()["items"]
    assert [e["actor"] for e in entries] == ["test-technician"]
    details = entries[0]["details"]
    assert details["fields"] == ["address", "heartbeat_interval_s", "postcode", "serial"]
    assert details["values"]["heartbeat_interval_s"] == {"from": 60, "to": 300}
    assert "2 Low St" not in str(details) and "LS1" not in str(details)


async def test_patch_refuses_what_it_may_not_change(
    admin: httpx.AsyncClient, devices: Devices
) -> None:
    device_id = (await devices.register())["device_id"]
    path = f"/devices/{device_id}"
    for body, field in [
        ({"migration_stage": "complete"}, "migration_stage"),
        ({"device_id": "other-id"}, "device_id"),
        ({"heartbeat_interval_s": None}, "heartbeat_interval_s"),
        ({"heartbeat_interval_s": 5}, "heartbeat_interval_s"),
        ({"postcode": "nowhere"}, "postcode"),
    ]:
        response = await admin.patch(path, json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await admin.patch(path, json={})).status_code == 422
    assert (await admin.patch("/devices/nobody-here", json={"serial": "x"})).status_code == 404


async def test_decommission_keeps_history_and_hides_the_device_from_default_lists(
    admin: httpx.AsyncClient, technician: httpx.AsyncClient, devices: Devices
) -> None:
    model = f"gone-{uuid.uuid4().hex[:6]}"
    device_id = (await devices.register(model=model))["device_id"]
    path = f"/devices/{device_id}"
    assert (await technician.delete(path)).status_code == 403  # admins only (docs/PROTOCOL.md §4)

    response = await admin.delete(path)
    assert response.status_code == 200, response.text
    assert response.json()["decommissioned_at"] is not None
    assert response.json()["status"] == "decommissioned"
    assert await _ids(admin, model=model) == set()
    assert await _ids(admin, model=model, include_decommissioned=True) == {device_id}
    assert await _ids(admin, model=model, status="decommissioned") == {device_id}
    assert (await admin.get(path)).status_code == 200  # history kept

    assert (await admin.delete(path)).status_code == 409
    assert (await admin.patch(path, json={"serial": "x"})).status_code == 409
    assert (await admin.post(f"{path}/credentials")).status_code == 409
    assert (await admin.post(f"{path}/migration", json={"stage": "scheduled"})).status_code == 409
    again = await admin.post("/devices", json={"device_id": device_id, "heartbeat_interval_s": 60})
    assert again.status_code == 409
    assert (await admin.delete("/devices/nobody-here")).status_code == 404


async def test_rotating_credentials_shows_a_new_password_once(
    admin: httpx.AsyncClient,
    technician: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
) -> None:
    device = await devices.register()
    path = f"/devices/{device['device_id']}/credentials"
    assert (await operator.post(path)).status_code == 403
    rotated = await technician.post(path)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["mqtt_password"] != device["mqtt_password"]
    assert len(body["mqtt_password"]) >= 32
    read = (await admin.get(f"/devices/{device['device_id']}")).json()
    assert read["mqtt_password_set_at"] == body["mqtt_password_set_at"]
    assert "mqtt_password" not in read
    assert (await technician.post("/devices/nobody-here/credentials")).status_code == 404
