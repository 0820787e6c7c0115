"""Failed authentication is rate-limited per client address (429 with Retry-After, counted)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.service import Service
from tests.service_process import parse_metrics

FORGED = {"Authorization": "Bearer tc_1_not-the-secret"}


@pytest.fixture
async def strict_service(settings: Settings) -> AsyncIterator[Service]:
    strict = settings.model_copy(update={"auth_failures_burst": 3, "auth_failures_per_minute": 1})
    async with Service(strict, {"api"}) as running:
        yield running


def _from(address: str, headers: dict[str, str]) -> dict[str, str]:
    """As if a client at `address` came through the reverse proxy on 127.0.0.1."""
    return {**headers, "X-Forwarded-For": address}


async def test_an_address_that_keeps_failing_is_refused_then_answered_again_elsewhere(
    strict_service: Service,
) -> None:
    token = await create_token(strict_service.pool, role=Role.OPERATOR, name="legit")
    valid = {"Authorization": f"Bearer {token}"}
    guesser, colleague = "198.51.100.7", "203.0.113.9"
    async with httpx.AsyncClient(base_url=f"{strict_service.api_url}/api/v1") as api:
        codes = [
            (await api.get("/alerts", headers=_from(guesser, FORGED))).status_code for _ in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
        limited = await api.get("/alerts", headers=_from(guesser, valid))
        assert limited.status_code == 429, "a hit looks like a miss while limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "retry in" in limited.json()["detail"]
        assert (await api.get("/alerts", headers=_from(colleague, valid))).status_code == 200
        assert (await api.get("/alerts", headers=_from(colleague, FORGED))).status_code == 401
        assert (await api.get("/alerts")).status_code == 401, "no token is not a guess"
        metrics = parse_metrics((await api.get(f"{strict_service.api_url}/metrics")).text)
    assert metrics['telecare_auth_failures_total{reason="invalid"}'] == 4
    assert metrics['telecare_auth_failures_total{reason="missing"}'] == 1
    assert metrics["telecare_auth_rate_limited_total"] == 3
