"""Every write route of the API has an entry in `WRITES` of tests/integration/test_audit_writes.py.

The write routes (every method but GET) come from the app itself, so a new write route fails this
test until the integration test shows the audit entry it leaves.
"""

from __future__ import annotations

from tests.integration.test_audit_writes import WRITES
from tests.routes import all_routes


def test_every_write_route_has_an_entry() -> None:
    writes = {(method, path) for method, path in all_routes() if method != "GET"}
    assert writes - set(WRITES) == set(), "write routes whose audit entry nobody checked"
    assert set(WRITES) - writes == set(), "entries for routes that do not exist"
