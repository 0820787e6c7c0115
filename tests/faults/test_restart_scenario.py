"""The bundled `restart` scenario against `telecare run` as a process the test stops with SIGTERM
and kills with SIGKILL mid-scenario; then `--check`: no alert missed, none false, none stuck.

The in-process scenario test (tests/integration/test_simulator_scenarios.py) cannot kill its
service, so this scenario is played here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.db.pool import open_pool
from telecare.simulators.api_client import Api
from telecare.simulators.run import RunOptions, run_scenario
from telecare.simulators.scenario import load_scenario
from telecare.simulators.truth.check import check_report
from telecare.simulators.truth.expect import Tolerance
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.faults

TIME_SCALE = 6  # a 60 s interval becomes 10 s, the protocol's minimum


@pytest.fixture
def scratch_database() -> Iterator[str]:
    name = f"telecare_restart_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_restart_scenario_checks_clean(
    scratch_database: str, broker: PrivateBroker, tmp_path: Path
) -> None:
    scenario = load_scenario("restart", time_scale=TIME_SCALE)
    tag = uuid.uuid4().hex[:6]
    env = {
        "TELECARE_DATABASE_URL": scratch_database,
        "TELECARE_MQTT_URL": broker.url,
        "TELECARE_MQTT_CLIENT_ID": f"restart-ingest-{tag}",
        "TELECARE_HEARTBEAT_FLUSH_MS": "50",
        **{f"TELECARE_{k.upper()}": str(v) for k, v in scenario.backend_settings().items()},
    }
    service = ServiceProcess(env, tmp_path / "service.log")
    restarts: list[str] = []

    async def restart(mode: str, down_s: float) -> None:
        await asyncio.to_thread(service.kill if mode == "kill" else service.stop)
        restarts.append(mode)
        await asyncio.sleep(down_s)
        await service.start()

    lines: list[str] = []
    async with service:
        async with open_pool(Settings(database_url=scratch_database, db_pool_min=1)) as pool:
            token = await create_token(pool, role=Role.TECHNICIAN, name=f"restart-{tag}")
        report = await run_scenario(
            RunOptions(
                scenario=scenario,
                broker=broker.address,
                prefix=f"rs{tag}",
                api_url=service.url,
                token=token,
                report_path=tmp_path / "restart.json",
                fleet_file=tmp_path / "restart.fleet.json",
                progress_s=15,
                tolerance=Tolerance(transport_s=2.0),
                say=lines.append,
                restart=restart,
            )
        )
        async with Api(service.url, token) as api:
            result = await check_report(report, api, out=lines.append)
    print(*lines, sep="\n")
    assert restarts == ["term", "kill"]
    assert len(report["service_outages"]) == 2
    assert report["errors"] == []
    assert result.misses == []
    assert result.false == []
