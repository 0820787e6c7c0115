"""Every endpoint under every role: 401 without a valid token, 403 for a role that may not.

Requests name an unknown id or carry an invalid body, so an admitted caller gets 404 or 422 and
nothing changes; what matters here is that the role check answers first.
"""

from __future__ import annotations

import httpx

from api.tokens import Role
from telecare.service import Service
from tests.support import api_client

ALL = {Role.ADMIN, Role.TECHNICIAN, Role.OPERATOR}
TECH = {Role.ADMIN, Role.TECHNICIAN}
OPS = {Role.ADMIN, Role.OPERATOR}
ADMIN = {Role.ADMIN}
GONE = "/devices/nobody-here"
CSV: dict[str, object] = {"content": b"device_id\n", "headers": {"Content-Type": "text/csv"}}

ENDPOINTS: list[tuple[str, str, dict[str, object], set[Role]]] = [
    ("POST", "/devices", {"json": {}}, TECH),
    ("GET", "/devices", {}, ALL),
    ("GET", GONE, {}, ALL),
    ("PATCH", GONE, {"json": {"serial": "x"}}, TECH),
    ("DELETE", GONE, {}, ADMIN),
    ("POST", f"{GONE}/credentials", {}, TECH),
    ("GET", f"{GONE}/migration", {}, ALL),
    ("GET", f"{GONE}/heartbeats", {}, ALL),
    ("POST", f"{GONE}/migration", {"json": {"stage": "scheduled"}}, TECH),
    ("POST", "/devices/import", CSV, TECH),
    ("GET", "/migration/report", {}, ALL),
    ("POST", "/tokens", {"json": {}}, ADMIN),
    ("GET", "/tokens", {}, ADMIN),
    ("DELETE", "/tokens/999999999", {}, ADMIN),
    ("GET", "/audit", {}, ADMIN),
    ("GET", "/alerts", {}, ALL),
    ("GET", "/alerts/999999999", {}, ALL),
    ("POST", "/alerts/999999999/ack", {}, OPS),
    ("POST", "/alerts/999999999/resolve", {}, OPS),
    ("GET", "/alarms", {}, ALL),
    ("POST", "/alarms/999999999/ack", {}, OPS),
    ("GET", "/events", {"params": {"last_event_id": -1}}, ALL),
    ("GET", "/quarantine", {}, TECH),
    ("GET", "/alert-rules", {}, ALL),
    ("GET", "/stats/fleet", {}, ALL),
    ("GET", "/stats/answer-times", {}, ALL),
    ("GET", "/session", {}, ALL),
]


async def test_every_endpoint_checks_the_token_then_the_role(service: Service) -> None:
    clients = {role: await api_client(service, role) for role in Role}
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=f"{service.api_url}/api/v1") as anonymous:
        for method, path, args, allowed in ENDPOINTS:
            forged = {"Authorization": "Bearer tc_1_forged"}
            answers = {
                "no token": await anonymous.request(method, path, **args),  # type: ignore[arg-type]
                "forged token": await anonymous.request(method, path, headers=forged),
            }
            for role, client in clients.items():
                answers[role.value] = await client.request(method, path, **args)  # type: ignore[arg-type]
            for who, response in answers.items():
                if who in {"no token", "forged token"}:
                    right = response.status_code == 401
                elif Role(who) in allowed:
                    right = response.status_code in {200, 404, 422}
                else:
                    right = response.status_code == 403 and who in response.json()["detail"]
                if not right:
                    wrong.append(f"{method} {path} as {who}: {response.status_code}")
    for client in clients.values():
        await client.aclose()
    assert not wrong, "\n".join(wrong)
