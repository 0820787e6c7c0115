"""Fuzzing the HTTP API from its own OpenAPI schema (schemathesis): valid and invalid requests
of every operation, as an admin (who may do everything). No answer may be a 5xx, every refusal
(4xx) must say why, and what the schema promises must hold for the answers that succeed.

The server is `telecare run --only api` on a database of its own. `TELECARE_FUZZ_EXAMPLES`
sets the examples per operation (default 25, about a minute in all; e.g. 500 for a long run).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.db.pool import open_pool
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.routes import app_for_inspection
from tests.service_process import ServiceProcess

EXAMPLES = int(os.environ.get("TELECARE_FUZZ_EXAMPLES", "25"))


async def _token(database_url: str) -> str:
    async with open_pool(Settings(database_url=database_url, db_pool_min=1)) as pool:
        return await create_token(pool, role=Role.ADMIN, name="fuzzer")


# Loaded at import: pytest collects one test per operation. The event stream is left out: a
# valid request is an answer that never ends (tests/integration/test_event_stream.py covers it,
# and its parameters are checked like any other route's in tests/integration/test_access.py).
schema = schemathesis.openapi.from_dict(app_for_inspection().openapi()).exclude(
    path="/api/v1/events"
)


@pytest.fixture(scope="module")
def fuzzed_api(
    broker: PrivateBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """The server's URL and an admin's headers."""
    database_url = create_database(ADMIN_URL)
    log = Path(tmp_path_factory.mktemp("fuzz")) / "api.log"
    server = ServiceProcess(
        {"TELECARE_DATABASE_URL": database_url, "TELECARE_MQTT_URL": broker.url}, log, roles="api"
    )
    asyncio.run(server.start())
    try:
        token = asyncio.run(_token(database_url))
        yield server.url, {"Authorization": f"Bearer {token}"}
    finally:
        server.stop()
        drop_database(ADMIN_URL, database_url)


def rejects_are_explained(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A 4xx says what was wrong: the app's JSON with a non-empty `detail`, or (for a request
    the HTTP server itself cannot parse) its plain-text reason."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        if content_type.startswith("application/json"):
            body = response.json()
            explained = isinstance(body, dict) and bool(body.get("detail"))
        else:
            explained = bool(response.text.strip())
        assert explained, f"{response.status_code} without a reason: {response.text[:200]!r}"
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error_and_every_refusal_says_why(
    case: Case[Any], fuzzed_api: tuple[str, dict[str, str]]
) -> None:
    base_url, headers = fuzzed_api
    case.call_and_validate(
        base_url=base_url,
        headers=headers,
        checks=[
            not_a_server_error,
            rejects_are_explained,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )
