"""Every route of the app under every role: 401 without a valid token, 403 for a role that may
not, anything else for a role that may, as `ACCESS` in tests/unit/test_access_rules.py says (that
test also checks the table names every route of the app).

Requests name an unknown id or carry an invalid body, so an admitted caller gets 404 or 422 and
nothing changes; what matters here is that the role check answers first.
"""

from __future__ import annotations

import httpx

from telecare.api.tokens import Role
from telecare.service import Service
from tests.support import api_client
from tests.unit.test_access_rules import ACCESS, PUBLIC, V1

# What fills each path parameter: nothing by these ids exists.
PATH_VALUES = {"device_id": "nobody-here", "item_id": "999999999", "token_id": "999999999"}
# Requests that cannot succeed: an admitted caller gets 422, nothing is written (and the event
# stream is refused before it starts).
ARGS: dict[tuple[str, str], dict[str, object]] = {
    ("GET", f"{V1}/events"): {"params": {"last_event_id": -1}},
    ("POST", f"{V1}/devices/import"): {
        "content": b"device_id\n",
        "headers": {"Content-Type": "text/csv"},
    },
    ("PATCH", f"{V1}/devices/{{device_id}}"): {"json": {"serial": "x"}},
    ("POST", f"{V1}/devices/{{device_id}}/migration"): {"json": {"stage": "scheduled"}},
}


async def test_every_route_checks_the_token_then_the_role(service: Service) -> None:
    clients = {role: await api_client(service, role) for role in Role}
    wrong: list[str] = []
    async with httpx.AsyncClient() as anonymous:
        for (method, template), allowed in ACCESS.items():
            url = f"{service.api_url}{template.format(**PATH_VALUES)}"
            args = ARGS.get((method, template), {"json": {}} if method != "GET" else {})
            forged = {"Authorization": "Bearer tc_1_forged"}
            answers = {
                "no token": await anonymous.request(method, url, **args),  # type: ignore[arg-type]
                "forged token": await anonymous.request(method, url, headers=forged),
            }
            for role, client in clients.items():
                answers[role.value] = await client.request(method, url, **args)  # type: ignore[arg-type]
            for who, response in answers.items():
                code = response.status_code
                if allowed is PUBLIC:
                    right = code == 200
                elif who in {"no token", "forged token"}:
                    right = code == 401
                elif Role(who) in allowed:
                    right = code not in {401, 403} and code < 500
                else:
                    right = code == 403 and who in response.json()["detail"]
                if not right:
                    wrong.append(f"{method} {template} as {who}: {code}")
    for client in clients.values():
        await client.aclose()
    assert not wrong, "\n".join(wrong)
