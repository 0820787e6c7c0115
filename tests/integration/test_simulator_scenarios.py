"""Every bundled scenario, at small size and time scale 6, against the real backend; then --check.

Each scenario gets a backend of its own (database, Mosquitto, Service with the scenario's
thresholds scaled), so all of them run at once without disturbing each other's area counts,
and the whole module takes about as long as the longest scenario (about a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.service import Service
from telecare.simulators.api_client import Api
from telecare.simulators.run import RunOptions, run_scenario
from telecare.simulators.scenario import available_scenarios, load_scenario
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.truth.check import CheckResult, check_report
from telecare.simulators.truth.expect import Tolerance
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIME_SCALE = 6  # a 60 s heartbeat interval becomes 10 s, the minimum of docs/PROTOCOL.md
# Nine backends and their fleets share this process's event loop and two loaded cores: allow
# more transport latency than a backend of its own would need (docs/SIMULATOR.md, tolerances).
TOLERANCE = Tolerance(transport_s=2.0)
# `restart` kills its service: played against a process in tests/faults/test_restart_scenario.py
SCENARIOS = [name for name in available_scenarios() if name != "restart"]


@dataclass
class Outcome:
    result: CheckResult | None = None
    refused: str | None = None  # the scenario could not be played: a failure
    lines: list[str] = field(default_factory=list)


def _admin(statement: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@contextlib.asynccontextmanager
async def _backing_services() -> AsyncIterator[tuple[str, PrivateBroker]]:
    """A database and a broker of the scenario's own, set up and torn down off the event loop.

    Off the loop matters: the other scenarios' backends share it, and a DROP DATABASE waits for
    every backend of the cluster, including theirs in the middle of a COPY that needs the loop.
    """
    name = f"telecare_sim_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(_admin, f'CREATE DATABASE "{name}"')
    broker = PrivateBroker()
    try:
        await asyncio.to_thread(broker.start)
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}", broker
    finally:
        await asyncio.to_thread(broker.__exit__, None, None, None)
        await asyncio.to_thread(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _run(name: str, workdir: Path) -> Outcome:
    scenario = load_scenario(name, time_scale=TIME_SCALE)
    outcome = Outcome()
    async with _backing_services() as (database_url, broker):
        settings = Settings(
            database_url=database_url,
            mqtt_url=broker.url,
            mqtt_client_id=f"sim-ingest-{name}",
            api_port=0,
            heartbeat_flush_ms=50,
            **scenario.backend_settings(),
        )
        async with Service(settings) as service:
            await service.wait_ready()
            token = await create_token(service.pool, role=Role.TECHNICIAN, name=f"sim-{name}")
            operator = await create_token(service.pool, role=Role.OPERATOR, name=f"op-{name}")
            try:
                report = await run_scenario(
                    RunOptions(
                        scenario=scenario,
                        broker=broker.address,
                        prefix=name[:12],
                        api_url=service.api_url,
                        token=token,
                        operator_token=operator,
                        report_path=workdir / f"{name}.json",
                        fleet_file=workdir / f"{name}.fleet.json",
                        progress_s=15,
                        tolerance=TOLERANCE,
                        say=outcome.lines.append,
                    )
                )
            except ScenarioError as exc:
                outcome.refused = str(exc)
                return outcome
            async with Api(service.api_url, token) as api:
                outcome.result = await check_report(report, api, out=outcome.lines.append)
    return outcome


def _selected(request: pytest.FixtureRequest) -> list[str]:
    names = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    }
    return sorted(names)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, asyncio.Task[Outcome]]]:
    """Starts every selected scenario at once; each test awaits its own."""
    workdir = tmp_path_factory.mktemp("scenarios")
    tasks = {
        n: asyncio.create_task(_run(n, workdir), name=f"scenario[{n}]") for n in _selected(request)
    }
    yield tasks
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_check_finds_no_miss_and_no_false_alert(
    name: str, outcomes: dict[str, asyncio.Task[Outcome]]
) -> None:
    outcome = await asyncio.wait_for(asyncio.shield(outcomes[name]), timeout=600)
    print(f"--- {name} ---", *outcome.lines, sep="\n")
    assert outcome.refused is None, f"{name} could not be played: {outcome.refused}"
    assert outcome.result is not None
    assert outcome.result.misses == []
    assert outcome.result.false == []
