"""Fixtures on the real services: a fresh PostgreSQL database per session, the real broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest

from api.tokens import Role, create_token
from core.settings import Settings
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import Devices, Mqtt

ADMIN_URL = os.environ.get(
    "TELECARE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"telecare_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    """This session's own Mosquitto: no other test run or demo shares its topics."""
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def mqtt(broker: PrivateBroker) -> Mqtt:
    return Mqtt(broker.address)


@pytest.fixture
def settings(database_url: str, broker: PrivateBroker) -> Settings:
    return Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        mqtt_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        api_port=0,
        heartbeat_flush_ms=50,
    )


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with Service(settings) as running:
        await running.wait_ready()
        yield running


async def _client(service: Service, role: Role) -> httpx.AsyncClient:
    token = await create_token(service.pool, role=role, name=f"test-{role.value}")
    return httpx.AsyncClient(
        base_url=f"{service.api_url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
async def admin(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(service, Role.ADMIN) as client:
        yield client


@pytest.fixture
async def operator(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(service, Role.OPERATOR) as client:
        yield client


@pytest.fixture
async def technician(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(service, Role.TECHNICIAN) as client:
        yield client


@pytest.fixture
async def devices(admin: httpx.AsyncClient) -> Devices:
    return Devices(admin)
