"""Every write route of the API leaves an audit entry naming who did what to which record.

`WRITES` holds one write of each route; tests/unit/test_audit_writes_rules.py checks that it
names every write route of the app (every method but GET), so a new write route fails the build
until its audit entry is shown here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from telecare.service import Service
from tests.support import Devices, Mqtt, alarm, topic, wait_for

V1 = "/api/v1"


@dataclass
class World:
    service: Service
    admin: httpx.AsyncClient
    operator: httpx.AsyncClient
    devices: Devices
    mqtt: Mqtt
    certified: httpx.AsyncClient  # an admin where devices are identified by certificate

    async def device(self) -> str:
        return str((await self.devices.register())["device_id"])

    async def alarm(self) -> int:
        device_id = await self.device()
        await self.mqtt.publish(topic(device_id, "alarm"), alarm("pendant"))

        async def stored() -> int | None:
            items = (await self.operator.get("/alarms", params={"device_id": device_id})).json()
            return int(items["items"][0]["id"]) if items["items"] else None

        return await wait_for(stored, what="the alarm stored")

    async def alert(self) -> int:
        device_id = await self.device()
        await self.mqtt.publish(topic(device_id, "status"), {"state": "offline", "reason": "lwt"})

        async def raised() -> int | None:
            items = (await self.operator.get("/alerts", params={"device_id": device_id})).json()
            return int(items["items"][0]["id"]) if items["items"] else None

        return await wait_for(raised, what="connection_lost raised")


# Each write: do it (successfully) and say which audit entry it must leave: (action, target id).
Write = Callable[[World], Awaitable[tuple[str, str]]]


async def _register(w: World) -> tuple[str, str]:
    return "device.register", await w.device()


async def _patch(w: World) -> tuple[str, str]:
    device_id = await w.device()
    assert (await w.admin.patch(f"/devices/{device_id}", json={"model": "M2"})).is_success
    return "device.update", device_id


async def _decommission(w: World) -> tuple[str, str]:
    device_id = await w.device()
    assert (await w.admin.delete(f"/devices/{device_id}")).is_success
    return "device.decommission", device_id


async def _rotate(w: World) -> tuple[str, str]:
    device_id = await w.device()
    assert (await w.admin.post(f"/devices/{device_id}/credentials")).is_success
    return "device.credentials_rotate", device_id


async def _certified_device(w: World) -> str:
    device_id = f"t-{uuid.uuid4().hex[:10]}"
    body = {"device_id": device_id, "heartbeat_interval_s": 60}
    answer = await w.certified.post("/devices", json=body)
    assert answer.status_code == 201, answer.text
    return device_id


async def _reissue(w: World) -> tuple[str, str]:
    device_id = await _certified_device(w)
    assert (await w.certified.post(f"/devices/{device_id}/certificate", json={})).is_success
    return "device.certificate_issue", device_id


async def _revoke_certificate(w: World) -> tuple[str, str]:
    device_id = await _certified_device(w)
    answer = await w.certified.post(f"/devices/{device_id}/certificate/revoke", json={})
    assert answer.is_success, answer.text
    return "device.certificate_revoke", device_id


async def _stage(w: World) -> tuple[str, str]:
    device_id = await w.device()
    answer = await w.admin.post(f"/devices/{device_id}/migration", json={"stage": "scheduled"})
    assert answer.is_success, answer.text
    return "device.migration", device_id


async def _import(w: World) -> tuple[str, str]:
    device_id = f"imported-{uuid.uuid4().hex[:8]}"
    csv = f"device_id,heartbeat_interval_s\n{device_id},60\n"
    answer = await w.admin.post(
        "/devices/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert answer.json()["ok"] == 1, answer.text
    return "device.register", device_id  # and one device.import: checked below


async def _token(w: World) -> tuple[str, str]:
    answer = await w.admin.post("/tokens", json={"name": "audited", "role": "operator"})
    return "token.create", str(answer.json()["id"])


async def _revoke(w: World) -> tuple[str, str]:
    token_id = (await w.admin.post("/tokens", json={"name": "gone", "role": "operator"})).json()
    assert (await w.admin.delete(f"/tokens/{token_id['id']}")).is_success
    return "token.revoke", str(token_id["id"])


def _operator_action(kind: str, action: str, path: str) -> Write:
    async def act(w: World) -> tuple[str, str]:
        item_id = await (w.alarm() if kind == "alarm" else w.alert())
        answer = await w.operator.post(f"/{kind}s/{item_id}/{path}", json={"note": "on it"})
        assert answer.is_success, answer.text
        return f"{kind}.{action}", str(item_id)

    return act


WRITES: dict[tuple[str, str], Write] = {
    ("POST", f"{V1}/devices"): _register,
    ("PATCH", f"{V1}/devices/{{device_id}}"): _patch,
    ("DELETE", f"{V1}/devices/{{device_id}}"): _decommission,
    ("POST", f"{V1}/devices/{{device_id}}/credentials"): _rotate,
    ("POST", f"{V1}/devices/{{device_id}}/migration"): _stage,
    ("POST", f"{V1}/devices/{{device_id}}/certificate"): _reissue,
    ("POST", f"{V1}/devices/{{device_id}}/certificate/revoke"): _revoke_certificate,
    ("POST", f"{V1}/devices/import"): _import,
    ("POST", f"{V1}/tokens"): _token,
    ("DELETE", f"{V1}/tokens/{{token_id}}"): _revoke,
    ("POST", f"{V1}/alarms/{{item_id}}/ack"): _operator_action("alarm", "acknowledged", "ack"),
    ("POST", f"{V1}/alarms/{{item_id}}/resolve"): _operator_action("alarm", "resolved", "resolve"),
    ("POST", f"{V1}/alerts/{{item_id}}/ack"): _operator_action("alert", "acknowledged", "ack"),
    ("POST", f"{V1}/alerts/{{item_id}}/resolve"): _operator_action("alert", "resolved", "resolve"),
}


async def test_every_write_leaves_an_audit_entry(
    service: Service,
    admin: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
    mqtt: Mqtt,
    certified_admin: httpx.AsyncClient,
) -> None:
    world = World(service, admin, operator, devices, mqtt, certified_admin)
    missing = []
    for (method, path), write in WRITES.items():
        action, target_id = await write(world)
        entries: list[dict[str, Any]] = (
            await admin.get("/audit", params={"action": action, "target_id": target_id})
        ).json()["items"]
        if not entries or not all(e["actor"].startswith("test-") for e in entries):
            missing.append(f"{method} {path}: no {action} entry for {target_id}")
    imports = (await admin.get("/audit", params={"action": "device.import"})).json()["items"]
    assert imports and imports[0]["details"] == {"rows": 1, "registered": 1, "dry_run": False}
    assert not missing, "\n".join(missing)
