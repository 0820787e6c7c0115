"""Who may call which route of the API: `ACCESS`, one entry per route with the roles allowed.

The routes come from the app itself (tests/routes.py), so a new route without an entry here fails
this test until someone decides who may call it. tests/integration/test_access.py then calls
each route under each role on the running service and checks the answers follow this table.
"""

from __future__ import annotations

from telecare.api.tokens import Role
from tests.routes import all_routes

ALL = frozenset(Role)
TECH = frozenset({Role.ADMIN, Role.TECHNICIAN})
OPS = frozenset({Role.ADMIN, Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
PUBLIC = None  # no token needed: readiness and metrics for monitoring, the console's page
V1 = "/api/v1"

ACCESS: dict[tuple[str, str], frozenset[Role] | None] = {
    ("POST", f"{V1}/devices"): TECH,
    ("GET", f"{V1}/devices"): ALL,
    ("GET", f"{V1}/devices/{{device_id}}"): ALL,
    ("PATCH", f"{V1}/devices/{{device_id}}"): TECH,
    ("DELETE", f"{V1}/devices/{{device_id}}"): ADMIN,
    ("POST", f"{V1}/devices/{{device_id}}/credentials"): TECH,
    ("GET", f"{V1}/devices/{{device_id}}/credentials"): TECH,
    ("POST", f"{V1}/devices/{{device_id}}/certificate"): TECH,
    ("POST", f"{V1}/devices/{{device_id}}/certificate/revoke"): TECH,
    ("GET", f"{V1}/devices/{{device_id}}/migration"): ALL,
    ("GET", f"{V1}/devices/{{device_id}}/heartbeats"): ALL,
    ("POST", f"{V1}/devices/{{device_id}}/migration"): TECH,
    ("POST", f"{V1}/devices/import"): TECH,
    ("GET", f"{V1}/migration/report"): ALL,
    ("POST", f"{V1}/tokens"): ADMIN,
    ("GET", f"{V1}/tokens"): ADMIN,
    ("DELETE", f"{V1}/tokens/{{token_id}}"): ADMIN,
    ("GET", f"{V1}/audit"): ADMIN,
    ("GET", f"{V1}/alerts"): ALL,
    ("GET", f"{V1}/alerts/{{item_id}}"): ALL,
    ("POST", f"{V1}/alerts/{{item_id}}/ack"): OPS,
    ("POST", f"{V1}/alerts/{{item_id}}/resolve"): OPS,
    ("GET", f"{V1}/alarms"): ALL,
    ("GET", f"{V1}/alarms/{{item_id}}"): ALL,
    ("POST", f"{V1}/alarms/{{item_id}}/ack"): OPS,
    ("POST", f"{V1}/alarms/{{item_id}}/resolve"): OPS,
    ("GET", f"{V1}/quarantine"): TECH,
    ("GET", f"{V1}/alert-rules"): ALL,
    ("GET", f"{V1}/events"): ALL,
    ("GET", f"{V1}/stats/fleet"): ALL,
    ("GET", f"{V1}/stats/answer-times"): ALL,
    ("GET", f"{V1}/session"): ALL,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the console's page: the operator signs in with a token in it
}


def test_every_route_has_an_access_entry() -> None:
    routes = set(all_routes())
    assert routes - set(ACCESS) == set(), "routes nobody decided the roles of"
    assert set(ACCESS) - routes == set(), "entries for routes that do not exist"
