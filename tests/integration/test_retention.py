"""Retention on TimescaleDB (whole chunks dropped) and on plain PostgreSQL (rows deleted): old
telemetry goes, resolved records go after theirs, nothing unresolved ever goes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from telecare.core.settings import Settings
from telecare.db.migrations.runner import is_hypertable
from telecare.db.pool import open_pool
from telecare.db.retention import TELEMETRY, RetentionPolicy, prune
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.databases import create_database, seed
from tests.postgres import PrivatePostgres
from tests.support import wait_for

POLICY = RetentionPolicy(heartbeat_days=90, record_days=2557)


@pytest.fixture(params=["timescaledb", "plain"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    """A seeded database with TimescaleDB, or on a cluster that cannot load it."""
    if request.param == "timescaledb":
        yield request.getfixturevalue("seeded_database"), True
    else:
        with PrivatePostgres(timescaledb=False) as cluster:
            url = create_database(cluster.url())
            asyncio.run(seed(url))
            yield url, False


async def _remaining(url: str) -> dict[str, list[object]]:
    queries = {
        "heartbeats": "SELECT msg_id FROM heartbeats ORDER BY received_at",
        "device_status_events": (
            "SELECT received_at::date > now()::date - 2 FROM device_status_events"
        ),
        "events": "SELECT at::date > now()::date - 2 FROM events",
        "alarms": "SELECT msg_id FROM alarms ORDER BY msg_id",
        "alarm_history": "SELECT count(*) FROM alarm_history",
        "alerts": "SELECT type || coalesce(':' || group_id::text, '') FROM alerts ORDER BY type",
        "alert_history": "SELECT count(*) FROM alert_history",
        "audit_log": "SELECT action FROM audit_log ORDER BY id",
    }
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return {
            table: [row[0] for row in await (await conn.execute(query.encode())).fetchall()]
            for table, query in queries.items()
        }


async def test_prune_keeps_what_is_recent_or_unresolved(database: tuple[str, bool]) -> None:
    url, timescale = database
    before = await _remaining(url)
    async with open_pool(Settings(database_url=url, db_pool_min=1)) as pool:
        async with pool.connection() as conn:
            assert await is_hypertable(conn, "heartbeats") is timescale
        dry = await prune(pool, POLICY, dry_run=True)
        assert await _remaining(url) == before, "a dry run removes nothing"
        report = await prune(pool, POLICY)
    removed = {r.table: r for r in report.removed}
    assert {t: r.rows for t, r in removed.items() if t not in TELEMETRY} == {
        "events": 1,
        "alarms": 1,
        "alerts": 1,
        "audit_log": 1,
    }
    # Dropped chunks are counted exactly, their rows only approximately (statistics).
    telemetry = {t: (removed[t].chunks if timescale else removed[t].rows) for t in TELEMETRY}
    assert telemetry == {"heartbeats": 3, "device_status_events": 1}
    assert [(r.table, r.chunks) for r in dry.removed] == [
        (r.table, r.chunks) for r in report.removed
    ]
    assert [r.rows for r in dry.removed if r.table not in TELEMETRY] == [
        r.rows for r in report.removed if r.table not in TELEMETRY
    ]
    left = await _remaining(url)
    assert left["heartbeats"] == ["h30", "h1"]
    assert left["device_status_events"] == [True]
    assert left["events"] and all(left["events"]), "only the old event went"
    assert left["alarms"] == ["new-resolved", "old-open"]
    assert left["alarm_history"] == [0]
    # The old area alert went; its member, resolved recently, stays and is no longer grouped.
    assert left["alerts"] == ["battery_low", "heartbeat_missed"]
    assert left["alert_history"] == [2]
    assert left["audit_log"] == ["token.create", "data.prune"]


def test_db_prune_prints_what_it_removes(seeded_database: str) -> None:
    env = {**os.environ, "TELECARE_DATABASE_URL": seeded_database}
    command = [sys.executable, "-m", "telecare", "db", "prune"]

    def prune_command(*args: str) -> str:
        done = subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    dry = prune_command("--dry-run")
    assert "would remove" in dry and "alarms: 1 rows" in dry
    done = prune_command()
    assert "removed" in done and "heartbeats: 3 chunks" in done
    assert "alarms: 0 rows" in prune_command()


@pytest.fixture
async def service_on_old_data(
    seeded_database: str, broker: PrivateBroker
) -> AsyncIterator[Service]:
    settings = Settings(database_url=seeded_database, mqtt_url=broker.url, api_port=0)
    async with Service(settings, {"ingest", "api"}) as running:
        yield running


async def test_the_service_prunes_on_its_own(service_on_old_data: Service) -> None:
    metrics = service_on_old_data.metrics

    async def run_done() -> bool:  # the run's figures are counted once all of it is done
        return bool(metrics.retention_last_run._value.get() > 0)

    await wait_for(run_done, what="the daily retention run at start")
    async with service_on_old_data.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM alarms")
        assert await cur.fetchone() == (2,)
    assert metrics.retention_removed.labels("alarms")._value.get() == 1
