"""Every process answers /healthz and /metrics, whatever its roles; only the API role serves
the API and the console."""

from __future__ import annotations

import httpx

from telecare.core.settings import Settings
from telecare.service import Service
from tests.service_process import parse_metrics


async def test_a_process_without_the_api_role_still_answers_health_and_metrics(
    settings: Settings,
) -> None:
    async with Service(settings, {"ingest", "alerts"}) as running:
        await running.wait_ready()
        async with httpx.AsyncClient(base_url=running.api_url) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
            assert health.json()["checks"]["broker"] is True
            assert health.json()["checks"]["alert_engine"] is True
            metrics = parse_metrics((await client.get("/metrics")).text)
            assert metrics["telecare_engine_partitions"] == 64
            assert (await client.get("/api/v1/devices")).status_code == 404
            assert (await client.get("/")).status_code == 404
