"""The HTTP API's access rules and error codes (docs/PROTOCOL.md section 4)."""

from __future__ import annotations

import httpx

from telecare.service import Service
from tests.support import Devices


async def test_no_token_is_401_and_bad_token_is_401(service: Service) -> None:
    async with httpx.AsyncClient(base_url=f"{service.api_url}/api/v1") as anonymous:
        assert (await anonymous.get("/devices")).status_code == 401
        bad = await anonymous.get("/devices", headers={"Authorization": "Bearer tc_nope"})
        assert bad.status_code == 401


async def test_operator_may_read_but_not_register(
    operator: httpx.AsyncClient, devices: Devices
) -> None:
    device = await devices.register()
    assert (await operator.get(f"/devices/{device['device_id']}")).status_code == 200
    response = await operator.post(
        "/devices", json={"device_id": "op-made", "heartbeat_interval_s": 60}
    )
    assert response.status_code == 403


async def test_register_returns_password_once_and_rejects_a_repeat(
    admin: httpx.AsyncClient, devices: Devices
) -> None:
    device = await devices.register(postcode="m1 1ae")
    assert len(device["mqtt_password"]) >= 24
    assert (device["postcode"], device["postcode_district"]) == ("M1 1AE", "M1")
    again = await admin.post(
        "/devices", json={"device_id": device["device_id"], "heartbeat_interval_s": 60}
    )
    assert again.status_code == 409
    read = (await admin.get(f"/devices/{device['device_id']}")).json()
    assert "mqtt_password" not in read


async def test_invalid_body_is_422_naming_the_field(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/devices", json={"device_id": "ok-id", "heartbeat_interval_s": 5})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "heartbeat_interval_s"]
    bad_id = await admin.post("/devices", json={"device_id": "no", "heartbeat_interval_s": 60})
    assert bad_id.json()["detail"][0]["loc"] == ["body", "device_id"]


async def test_unknown_device_is_404(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/devices/nobody-here")).status_code == 404


async def test_list_pages_with_a_cursor(admin: httpx.AsyncClient, devices: Devices) -> None:
    made = {(await devices.register())["device_id"] for _ in range(3)}
    seen: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get("/devices", params=params)).json()
        seen |= {d["device_id"] for d in page["items"]}
        cursor = page["next"]
        if cursor is None:
            break
    assert made <= seen


async def test_healthz_and_metrics(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.api_url) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["checks"] == {
            "database": True,
            "broker": True,
            "telemetry_feed": True,
            "alert_engine": True,
            "alert_writer": True,
            "event_stream": True,
        }
        metrics = (await client.get("/metrics")).text
        assert "telecare_heartbeat_flush_seconds" in metrics


async def test_session_names_the_token_holder_and_what_they_may_do(
    operator: httpx.AsyncClient, technician: httpx.AsyncClient
) -> None:
    me = (await operator.get("/session")).json()
    assert (me["name"], me["role"], me["may_act"]) == ("test-operator", "operator", True)
    assert (await technician.get("/session")).json()["may_act"] is False
