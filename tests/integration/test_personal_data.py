"""No personal data (resident reference, address) in logs or metrics.

A device is registered, changed, imported and used with distinctive values; every log record
the service writes meanwhile (at DEBUG) and /metrics are searched for them.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from telecare.service import Service
from tests.support import Mqtt, alarm, heartbeat, topic, wait_for


async def test_resident_and_address_never_reach_logs_or_metrics(
    service: Service,
    admin: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    mqtt: Mqtt,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:8]
    secrets = [f"RES-{tag}", f"{tag} Primrose Lane", f"RES2-{tag}", f"{tag} Larch Close"]
    device_id, imported = f"pii-{tag}", f"pii-imp-{tag}"
    body = {
        "device_id": device_id,
        "heartbeat_interval_s": 60,
        "resident_ref": secrets[0],
        "address": secrets[1],
        "postcode": "LS1 4AP",
    }
    assert (await admin.post("/devices", json=body)).status_code == 201
    assert (await admin.post("/devices", json=body)).status_code == 409
    changes = {"resident_ref": secrets[2], "address": secrets[3]}
    assert (await admin.patch(f"/devices/{device_id}", json=changes)).status_code == 200
    too_long = {"resident_ref": secrets[0] * 40}
    assert (await admin.patch(f"/devices/{device_id}", json=too_long)).status_code == 422
    csv = (
        "device_id,heartbeat_interval_s,resident_ref,address\n"
        f"{imported},60,{secrets[0]},{secrets[1]}\n"
    )
    answer = await admin.post(
        "/devices/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert answer.json()["ok"] == 1
    await admin.get(f"/devices/{device_id}")
    await admin.get("/devices", params={"postcode_district": "LS1"})
    await admin.get("/migration/report")
    await admin.post(f"/devices/{device_id}/migration", json={"stage": "scheduled"})
    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())
    await mqtt.publish(topic(device_id, "alarm"), alarm("fall"))
    await mqtt.publish(topic(device_id, "heartbeat"), f'{{"detail": "{secrets[1]}"'.encode())

    async def alarm_stored() -> bool:
        items = (await operator.get("/alarms", params={"device_id": device_id})).json()["items"]
        return bool(items)

    await wait_for(alarm_stored, what="the alarm stored")
    await admin.delete(f"/devices/{imported}")
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{service.api_url}/metrics")).text

    logged = "\n".join(
        record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert device_id in logged, "the test did reach the code that logs"
    for secret in secrets:
        assert secret not in logged, f"{secret!r} was logged"
        assert secret not in metrics, f"{secret!r} is in /metrics"
