"""Fixtures on the real services: a fresh PostgreSQL database per session, the real broker."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.devices import ca_setup
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.databases import create_database, drop_database, seed
from tests.support import Devices, Mqtt, api_client

ADMIN_URL = os.environ.get(
    "TELECARE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def _scratch_database() -> Iterator[str]:
    name = f"telecare_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def seeded_database() -> Iterator[str]:
    """A database of its own on the shared cluster, with the rows of tests/databases.py SEED."""
    url = create_database(ADMIN_URL)
    asyncio.run(seed(url))
    yield url
    drop_database(ADMIN_URL, url)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with _scratch_database() as url:
        yield url


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database of this test's own, for figures over the whole of it (fleet, answer times)."""
    with _scratch_database() as url:
        yield url


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    """This session's own Mosquitto: no other test run or demo shares its topics."""
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def mqtt(broker: PrivateBroker) -> Mqtt:
    return Mqtt(broker.address)


@pytest.fixture(scope="session")
def dynsec_broker() -> Iterator[PrivateBroker]:
    """A private Mosquitto with the shipped dynamic-security configuration."""
    with PrivateBroker(dynsec=True) as running:
        yield running


@pytest.fixture
def dynsec_settings(settings: Settings, dynsec_broker: PrivateBroker) -> Settings:
    return settings.model_copy(
        update={"mqtt_url": dynsec_broker.url, "broker_credentials": "dynsec"}
    )


@pytest.fixture
async def dynsec_service(dynsec_settings: Settings) -> AsyncIterator[Service]:
    """The whole service with per-device broker credentials."""
    async with Service(dynsec_settings) as running:
        await running.wait_ready()
        yield running


@pytest.fixture
def settings(database_url: str, broker: PrivateBroker) -> Settings:
    return Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        mqtt_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        api_port=0,
        heartbeat_flush_ms=50,
        auth_failures_burst=1000,  # tests try many bad tokens from 127.0.0.1 on purpose
    )


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with Service(settings) as running:
        await running.wait_ready()
        yield running


@pytest.fixture
async def own_service(settings: Settings, empty_database_url: str) -> AsyncIterator[Service]:
    """The whole service on a database of its own: figures over all of it are the test's."""
    async with Service(settings.model_copy(update={"database_url": empty_database_url})) as svc:
        await svc.wait_ready()
        yield svc


@pytest.fixture(scope="session")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> ca_setup.CaFiles:
    """The CAs, broker and service certificates `telecare ca init` makes, for this session."""
    folder = tmp_path_factory.mktemp("telecare-ca") / "ca"
    return ca_setup.init(folder, days=30, now=datetime.now(UTC))


@pytest.fixture
def certificate_settings(
    settings: Settings, ca_files: ca_setup.CaFiles, tmp_path: Path
) -> Settings:
    """Devices identified by certificate (TELECARE_BROKER_CREDENTIALS=certificates). The
    revocation list is the test's own; the reload command leaves a mark per reload."""
    crl = tmp_path / "device-crl.pem"
    shutil.copy(ca_files.device_crl, crl)
    return settings.model_copy(
        update={
            "broker_credentials": "certificates",
            # its own sessions: the plain `service` may run beside it on the same broker
            "mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}",
            "device_ca_cert_file": str(ca_files.device_ca_cert),
            "device_ca_key_file": str(ca_files.device_ca_key),
            "device_crl_file": str(crl),
            "broker_reload_command": f"echo reloaded >> {tmp_path / 'reloads'}",
            "mqtt_ca_file": str(ca_files.broker_ca_cert),
        }
    )


@pytest.fixture
async def certificate_service(certificate_settings: Settings) -> AsyncIterator[Service]:
    async with Service(certificate_settings) as running:
        await running.wait_ready()
        yield running


@pytest.fixture
async def certified_admin(certificate_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """An admin of a service whose devices are identified by certificate."""
    async with await api_client(certificate_service, Role.ADMIN) as client:
        yield client


@pytest.fixture
async def admin(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(service, Role.ADMIN) as client:
        yield client


@pytest.fixture
async def operator(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(service, Role.OPERATOR) as client:
        yield client


@pytest.fixture
async def technician(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(service, Role.TECHNICIAN) as client:
        yield client


@pytest.fixture
async def devices(admin: httpx.AsyncClient) -> Devices:
    return Devices(admin)
