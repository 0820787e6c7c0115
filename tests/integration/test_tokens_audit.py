"""API tokens (named, hashed, revocable, last use) and the audit log admins read."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from telecare.api.tokens import Role, create_token, revoke_token
from telecare.db.audit import CLI
from telecare.service import Service
from tests.support import Devices, wait_for


async def test_admin_issues_lists_and_revokes_tokens(
    service: Service, admin: httpx.AsyncClient
) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    created = await admin.post("/tokens", json={"name": name, "role": "operator"})
    assert created.status_code == 201, created.text
    issued = created.json()
    token = issued["token"]
    assert token.startswith(f"tc_{issued['id']}_")

    async with httpx.AsyncClient(
        base_url=f"{service.api_url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as alice:
        assert (await alice.get("/devices")).status_code == 200
        assert (await alice.get("/tokens")).status_code == 403

        listed = (await admin.get("/tokens", params={"limit": 1000})).json()["items"]
        [mine] = [t for t in listed if t["id"] == issued["id"]]
        assert (mine["name"], mine["role"], mine["revoked_at"]) == (name, "operator", None)
        assert mine["last_used_at"] is not None
        assert "token" not in mine and "token_hash" not in mine

        revoked = await admin.delete(f"/tokens/{issued['id']}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert (await alice.get("/devices")).status_code == 401
        assert (await admin.delete(f"/tokens/{issued['id']}")).status_code == 409
    assert (await admin.delete("/tokens/999999999")).status_code == 404

    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT token_hash FROM api_tokens WHERE id = %s", [issued["id"]])
        row = await cur.fetchone()
    assert row == (hashlib.sha256(token.encode()).hexdigest(),)  # only the hash is stored


async def test_tokens_refuse_bad_bodies_and_forged_secrets(
    service: Service, admin: httpx.AsyncClient
) -> None:
    bad_role = await admin.post("/tokens", json={"name": "x", "role": "root"})
    assert bad_role.status_code == 422
    assert bad_role.json()["detail"][0]["loc"] == ["body", "role"]
    no_name = await admin.post("/tokens", json={"name": "  ", "role": "admin"})
    assert no_name.json()["detail"][0]["loc"] == ["body", "name"]

    real = await create_token(service.pool, role=Role.ADMIN, name="forgery-target")
    token_id = real.split("_")[1]
    forgeries = [f"tc_{token_id}_{'A' * 43}", f"tc_{token_id}_", "tc_x_y", real + "x", "Bearer"]
    async with httpx.AsyncClient(base_url=f"{service.api_url}/api/v1") as anonymous:
        for forged in forgeries:
            response = await anonymous.get(
                "/devices", headers={"Authorization": f"Bearer {forged}"}
            )
            assert response.status_code == 401, forged


async def test_last_use_is_written_at_most_once_a_minute(service: Service) -> None:
    token = await create_token(service.pool, role=Role.OPERATOR, name="counted")
    token_id = int(token.split("_")[1])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with service.pool.connection() as conn:
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = %s WHERE id = %s", [long_ago, token_id]
        )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"{service.api_url}/api/v1", headers=headers) as api:
        await api.get("/devices")
        first = await _last_used(service, token_id)
        await api.get("/devices")
        assert await _last_used(service, token_id) == first  # not rewritten within the minute
    assert first > long_ago


async def _last_used(service: Service, token_id: int) -> datetime:
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT last_used_at FROM api_tokens WHERE id = %s", [token_id])
        row = await cur.fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]


async def test_audit_log_names_who_did_what_and_filters(
    admin: httpx.AsyncClient,
    technician: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    devices: Devices,
) -> None:
    assert (await technician.get("/audit")).status_code == 403
    assert (await operator.get("/audit")).status_code == 403
    device_id = f"audited-{uuid.uuid4().hex[:8]}"
    registered = await technician.post(
        "/devices",
        json={"device_id": device_id, "heartbeat_interval_s": 60, "resident_ref": "R-SECRET"},
    )
    assert registered.status_code == 201
    await technician.post(f"/devices/{device_id}/credentials")
    await admin.delete(f"/devices/{device_id}")

    entries = (await admin.get("/audit", params={"target_id": device_id})).json()["items"]
    assert [(e["action"], e["actor"], e["actor_role"]) for e in entries] == [
        ("device.decommission", "test-admin", "admin"),
        ("device.credentials_rotate", "test-technician", "technician"),
        ("device.register", "test-technician", "technician"),
    ]
    assert "R-SECRET" not in str(entries)
    page = await admin.get("/audit", params={"target_id": device_id, "limit": 2})
    second = await admin.get(
        "/audit", params={"target_id": device_id, "limit": 2, "cursor": page.json()["next"]}
    )
    assert [e["action"] for e in second.json()["items"]] == ["device.register"]
    by_actor = (await admin.get("/audit", params={"actor": "test-admin", "limit": 1000})).json()
    assert {e["actor"] for e in by_actor["items"]} == {"test-admin"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await admin.get("/audit", params={"since": future})).json()["items"] == []
    # The fixtures' tokens come from create_token, as `telecare token create` makes them.
    params = {"target_type": "token", "action": "token.create", "actor": "cli"}
    typed = (await admin.get("/audit", params=params)).json()["items"]
    assert typed and {(e["actor_role"], e["target_type"]) for e in typed} == {("admin", "token")}
    assert "test-admin" in {e["details"]["name"] for e in typed}


async def test_a_token_revoked_elsewhere_stops_working_at_once(service: Service) -> None:
    """A token the API remembers is forgotten as soon as any process revokes it."""
    token = await create_token(service.pool, role=Role.OPERATOR, name="revoked-elsewhere")
    token_id = int(token.split("_")[1])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"{service.api_url}/api/v1", headers=headers) as api:
        assert (await api.get("/devices")).status_code == 200
        assert len(service.tokens) > 0, "remembered"
        await revoke_token(service.pool, token_id, actor=CLI)  # as another process would

        async def refused() -> bool:
            return (await api.get("/devices")).status_code == 401

        await wait_for(refused, within_s=2, what="the revoked token refused")
