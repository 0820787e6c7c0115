"""Plain PostgreSQL still works (docs/PROTOCOL.md section 1): a cluster where TimescaleDB is
installed but not preloaded, so CREATE EXTENSION would end the session. The service warns and
runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.databases import create_database
from tests.postgres import PrivatePostgres
from tests.support import Devices, Mqtt, api_client, heartbeat, topic, wait_for


@pytest.fixture(scope="module")
def plain_database() -> Iterator[str]:
    with PrivatePostgres(timescaledb=False) as cluster:
        yield create_database(cluster.url())


async def test_the_service_runs_on_plain_postgresql(
    plain_database: str, broker: PrivateBroker, mqtt: Mqtt, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(database_url=plain_database, mqtt_url=broker.url, api_port=0)
    async with Service(settings) as service:
        await service.wait_ready()
        assert any("not in shared_preload_libraries" in r.getMessage() for r in caplog.records)
        async with await api_client(service, Role.TECHNICIAN) as technician:
            device_id = (await Devices(technician).register())["device_id"]
            await mqtt.publish(topic(device_id, "heartbeat"), heartbeat())

            async def online() -> bool:
                body = (await technician.get(f"/devices/{device_id}")).json()
                return bool(body["status"] == "online")

            await wait_for(online, what="a heartbeat stored in the plain table")
