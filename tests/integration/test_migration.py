"""A home through the switchover: stage rules, evidence for `complete`, history, the report."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.support import Devices, Mqtt, alarm, heartbeat, topic, wait_for


async def _move(api: httpx.AsyncClient, device_id: str, stage: str, **body: Any) -> httpx.Response:
    return await api.post(f"/devices/{device_id}/migration", json={"stage": stage, **body})


async def _heard_since_stage(api: httpx.AsyncClient, device_id: str, mqtt: Mqtt) -> None:
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())

    async def heard() -> bool:
        device = (await api.get(f"/devices/{device_id}")).json()
        last = device["last_heartbeat_at"]
        return last is not None and last >= device["stage_changed_at"]

    await wait_for(heard, what="heartbeat stored")


async def test_stages_follow_the_switchover_and_every_change_is_recorded(
    admin: httpx.AsyncClient,
    technician: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
) -> None:
    device = await devices.register()
    device_id = device["device_id"]
    assert (await _move(operator, device_id, "scheduled")).status_code == 403
    skipped = await _move(technician, device_id, "in_progress")
    assert skipped.status_code == 409
    assert "'analogue'" in skipped.json()["detail"] and "scheduled" in skipped.json()["detail"]

    for stage in ("scheduled", "in_progress", "failed", "scheduled", "in_progress", "verifying"):
        response = await _move(technician, device_id, stage, note=f"to {stage}")
        assert response.status_code == 200, response.text
    view = response.json()
    assert view["migration_stage"] == "verifying"
    assert view["next_stages"] == ["complete", "failed"]
    assert view["stage_changed_at"] > device["stage_changed_at"]  # liveness window restarts
    history = (await operator.get(f"/devices/{device_id}/migration")).json()["history"]
    assert [(h["from_stage"], h["to_stage"]) for h in history] == [
        (None, "analogue"),
        ("analogue", "scheduled"),
        ("scheduled", "in_progress"),
        ("in_progress", "failed"),
        ("failed", "scheduled"),
        ("scheduled", "in_progress"),
        ("in_progress", "verifying"),
    ]
    assert {h["actor"] for h in history[1:]} == {"test-technician"}
    assert history[-1]["note"] == "to verifying"
    assert (await _move(technician, device_id, "analogue")).status_code == 409
    assert (await _move(technician, device_id, "nowhere")).status_code == 422
    assert (await _move(technician, "nobody-here", "scheduled")).status_code == 404
    audit = (await admin.get("/audit", params={"target_id": device_id})).json()["items"]
    assert [e["action"] for e in audit].count("device.migration") == 6


async def test_complete_needs_a_heartbeat_and_an_acknowledged_test_alarm(
    admin: httpx.AsyncClient,
    technician: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
    mqtt: Mqtt,
) -> None:
    device_id = (await devices.register(migration_stage="in_progress"))["device_id"]
    assert (await _move(technician, device_id, "verifying")).status_code == 200

    refused = await _move(technician, device_id, "complete")
    assert refused.status_code == 409
    missing = refused.json()["missing"]
    assert len(missing) == 2
    assert "no heartbeat" in missing[0] and "no test alarm" in missing[1]

    await _heard_since_stage(admin, device_id, mqtt)
    await mqtt.publish(topic(device_id, "alarm"), json.dumps(alarm("test")))

    async def test_alarm() -> list[dict[str, Any]]:
        params = {"device_id": device_id, "event": "test"}
        items: list[dict[str, Any]] = (await admin.get("/alarms", params=params)).json()["items"]
        return items

    [stored] = await wait_for(test_alarm, what="test alarm stored")
    view = (await technician.get(f"/devices/{device_id}/migration")).json()
    assert view["evidence"]["missing"] == [
        f"test alarm {stored['id']} has not been acknowledged by an operator yet"
    ]
    assert (await _move(technician, device_id, "complete")).status_code == 409

    assert (await operator.post(f"/alarms/{stored['id']}/ack")).status_code == 200
    done = await _move(technician, device_id, "complete", note="all good")
    assert done.status_code == 200, done.text
    assert done.json()["next_stages"] == []
    evidence = done.json()["history"][-1]["evidence"]
    assert evidence["test_alarm_id"] == stored["id"]
    assert evidence["test_alarm_acknowledged_by"] == "test-operator"
    assert evidence["missing"] == []


async def test_report_counts_stages_per_district_and_lists_devices_at_risk(
    admin: httpx.AsyncClient, operator: httpx.AsyncClient, devices: Devices, mqtt: Mqtt
) -> None:
    district = f"Z{uuid.uuid4().int % 90 + 10}"  # a district no other test uses
    postcode = f"{district} 1AA"
    quiet = (await devices.register(postcode=postcode, migration_stage="in_progress"))["device_id"]
    heard = (await devices.register(postcode=postcode, migration_stage="verifying"))["device_id"]
    await devices.register(postcode=postcode)
    await devices.register(postcode=postcode, migration_stage="complete")
    gone = (await devices.register(postcode=postcode, migration_stage="in_progress"))["device_id"]
    assert (await admin.delete(f"/devices/{gone}")).status_code == 200
    await _heard_since_stage(admin, heard, mqtt)

    response = await operator.get("/migration/report", params={"postcode_district": district})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["stages"] == [
        "analogue",
        "scheduled",
        "in_progress",
        "verifying",
        "complete",
        "failed",
    ]
    assert report["districts"] == [
        {
            "postcode_district": district,
            "total": 4,
            "counts": {
                "analogue": 1,
                "scheduled": 0,
                "in_progress": 1,
                "verifying": 1,
                "complete": 1,
                "failed": 0,
            },
        }
    ]
    assert report["totals"] == report["districts"][0]["counts"]
    assert [r["device_id"] for r in report["at_risk"]] == [quiet]
    at_risk = report["at_risk"][0]
    assert at_risk["last_heartbeat_at"] is None and at_risk["at_risk_s"] >= 0
    assert at_risk["migration_stage"] == "in_progress"

    counted_only = await operator.get(
        "/migration/report", params={"postcode_district": district, "at_risk_limit": 0}
    )
    assert (counted_only.json()["at_risk"], counted_only.json()["at_risk_total"]) == ([], 1)

    whole = (await operator.get("/migration/report")).json()
    assert any(d["postcode_district"] == district for d in whole["districts"])
    ages = [r["at_risk_s"] for r in whole["at_risk"]]
    assert ages == sorted(ages, reverse=True)
    assert all(set(d["counts"]) == set(whole["stages"]) for d in whole["districts"])
