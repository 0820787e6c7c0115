"""Faults under load on real services: the broker restarts, the database goes away for 30 s,
the service is killed with SIGKILL, the database is slow. Each run counts what the devices sent,
what the database holds and what was acknowledged, and measures the time to recover.

Every run has its own database, broker and `telecare run` process (tests/fault_harness.py).
`make test` runs them at CI size (tests/fault_harness.py SCALE, about a minute each);
`make reliability` at full size, and rewrites the table in RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.fault_harness import SCALE, FaultResult, FaultRun
from tests.postgres import PrivatePostgres
from tests.support import wait_for

pytestmark = pytest.mark.faults

DB_OUTAGE_S = 30


@pytest.fixture
def fault_database() -> Iterator[str]:
    """A database of its own on the shared cluster (the cluster itself is never stopped)."""
    url = create_database(ADMIN_URL)
    yield url
    drop_database(ADMIN_URL, url)


@pytest.fixture
def private_postgres() -> Iterator[tuple[PrivatePostgres, str]]:
    """A cluster of its own, with TimescaleDB, that the test may stop, pause and slow."""
    with PrivatePostgres() as cluster:
        yield cluster, create_database(cluster.url())


@pytest.fixture
def fault_broker() -> Iterator[PrivateBroker]:
    """A broker of its own that keeps sessions across a restart, as a production one does."""
    with PrivateBroker(persistence=True) as broker:
        yield broker


def _assert_nothing_lost(result: FaultResult) -> None:
    assert result.alarms.sent > 0
    assert result.alarms.lost == 0, "an alarm sent was never stored"
    assert result.alarms.duplicated == 0
    assert result.alarms.stored == result.alarms.sent
    assert result.heartbeats.sent > 0
    assert result.heartbeats.lost <= result.heartbeats_dropped_counted, (
        "heartbeats lost beyond what /metrics counted"
    )
    assert result.heartbeats.duplicated == 0


async def test_broker_restart_under_load(
    tmp_path: Path, fault_database: str, fault_broker: PrivateBroker
) -> None:
    run = FaultRun("broker_restart", tmp_path, database_url=fault_database, broker=fault_broker)
    try:
        await run.start()
        await asyncio.to_thread(fault_broker.restart)  # SIGTERM: the broker saves its sessions
        fault_end = time.time()
        await run.recovery(fault_end, baseline=await run.stored_writes())
        await asyncio.sleep(SCALE.steady_s)
        result = await run.finish()
    finally:
        await run.close()
    _assert_nothing_lost(result)
    assert result.heartbeats.lost == 0, "the broker kept the sessions: nothing may be lost"


@pytest.mark.parametrize("how", ["stopped", "hung"])
async def test_database_unreachable_for_30_s_under_load(
    tmp_path: Path,
    private_postgres: tuple[PrivatePostgres, str],
    fault_broker: PrivateBroker,
    how: str,
) -> None:
    """`stopped`: an immediate shutdown, connections refused; `hung`: every process of the
    cluster SIGSTOPped, connections open and nothing answers (write deadlines matter here).

    The ingest keeps heartbeats in its bounded buffer (CI: a small one, so that it overflows
    and the overflow is counted), takes no alarm it cannot commit (they wait at the broker,
    not PUBACKed), acknowledges nothing before it is committed, and catches up."""
    cluster, database_url = private_postgres
    env = {} if SCALE.name == "full" else {"TELECARE_HEARTBEAT_BUFFER_MAX": "1000"}
    fault = "database_outage" if how == "stopped" else "database_hung"
    run = FaultRun(fault, tmp_path, database_url=database_url, broker=fault_broker, env=env)
    try:
        await run.start()
        baseline = await run.stored_writes()
        if how == "stopped":
            await asyncio.to_thread(cluster.stop, "immediate")
        else:
            cluster.pause()
        down_at = time.time()
        held = await _sample_during(run, DB_OUTAGE_S)
        if how == "stopped":
            await asyncio.to_thread(cluster.start)
        else:
            cluster.resume()
        up_at = time.time()
        await run.recovery(up_at, baseline)
        await asyncio.sleep(SCALE.steady_s)
        result = await run.finish()
    finally:
        cluster.resume()
        await run.close()
    result.notes.update(held, outage_s=round(up_at - down_at, 1))
    result.save()
    _assert_nothing_lost(result)
    early = [
        key
        for key, acked_at in run.accepted_acks().items()
        if run.alarms.sent()[key] > down_at + 1 and acked_at < up_at
    ]
    assert early == [], "alarms raised during the outage were acknowledged before it ended"
    assert held["alarms_in_progress_max"] <= 16, "the ingest took alarms it could not commit"
    if SCALE.name == "ci":
        assert result.heartbeats_dropped_counted > 0, "the small buffer overflowed, counted"


async def _sample_during(run: FaultRun, seconds: float) -> dict[str, float]:
    """Sample the service's /metrics and memory for `seconds` (the length of the fault)."""
    peaks = {"rss_mb_max": 0.0, "alarms_in_progress_max": 0.0, "heartbeats_buffered_max": 0.0}
    peaks["rss_mb_start"] = run.service.rss_bytes() / 2**20
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        metrics = await run.service.metrics()
        for key, name in (
            ("alarms_in_progress_max", "telecare_alarms_in_progress"),
            ("heartbeats_buffered_max", 'telecare_write_buffered{what="heartbeats"}'),
            ("mqtt_queued_max", 'telecare_mqtt_queued{session="alarms"}'),
        ):
            peaks[key] = max(peaks.get(key, 0.0), metrics.get(name, 0.0))
        peaks["rss_mb_max"] = max(peaks["rss_mb_max"], run.service.rss_bytes() / 2**20)
        await asyncio.sleep(0.5)
    return {key: round(value, 1) for key, value in peaks.items()}


async def test_service_killed_with_sigkill_under_alarm_load(
    tmp_path: Path, fault_database: str, fault_broker: PrivateBroker
) -> None:
    """Every alarm acknowledged `accepted` before the kill is in the database at that moment;
    after a restart and the devices' retries, every alarm is stored exactly once."""
    run = FaultRun(
        "service_sigkill",
        tmp_path,
        database_url=fault_database,
        broker=fault_broker,
        alarm_rate=SCALE.alarm_rate * 4,
    )
    try:
        await run.start()
        await asyncio.to_thread(run.service.kill)
        killed_at = time.time()
        accepted = run.accepted_acks()
        stored = await run.alarms_stored()
        restart_at = time.time()
        baseline = await run.stored_writes()
        await run.service.start()
        # Heartbeats the broker took up to a second after the kill may have reached the process
        # before it died (the PUBACK is seen here later than the broker sent it): not counted.
        await run.recovery(restart_at, baseline, since=killed_at + 1)
        await asyncio.sleep(SCALE.steady_s)
        result = await run.finish()
    finally:
        await run.close()
    result.notes.update(accepted_before_kill=len(accepted))
    result.save()
    assert accepted, "alarms were acknowledged before the kill"
    assert set(accepted) <= stored, "an alarm was acknowledged before it was committed"
    assert result.alarms.lost == 0 and result.alarms.duplicated == 0
    assert result.alarms.stored == result.alarms.sent
    # What the killed process had received and not yet written: at most its heartbeat buffer,
    # about one flush interval (200 ms) of them in steady state.
    assert result.heartbeats.lost <= SCALE.heartbeat_rate
    assert result.heartbeats.duplicated == 0


_SLOW_WRITES = """
CREATE OR REPLACE FUNCTION fault_slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(TG_ARGV[0]::float); RETURN NEW; END $$;
CREATE TRIGGER fault_slow BEFORE INSERT ON heartbeats
    FOR EACH ROW EXECUTE FUNCTION fault_slow_write('0.01');
CREATE TRIGGER fault_slow BEFORE INSERT ON alarms
    FOR EACH ROW EXECUTE FUNCTION fault_slow_write('0.2');
"""
_FAST_AGAIN = "DROP TRIGGER fault_slow ON heartbeats; DROP TRIGGER fault_slow ON alarms"


async def test_slow_database_under_load(
    tmp_path: Path, private_postgres: tuple[PrivatePostgres, str], fault_broker: PrivateBroker
) -> None:
    """Every heartbeat row costs the database 10 ms to write and every alarm 200 ms (a
    trigger), slower than the load: the heartbeat buffer fills to its bound and drops the
    oldest (counted), memory stays flat, alarms wait at the broker, and all catches up after."""
    _, database_url = private_postgres
    slow_s = 120 if SCALE.name == "full" else 20
    buffer_max = 200_000 if SCALE.name == "full" else 2_000
    env = {"TELECARE_HEARTBEAT_BUFFER_MAX": str(buffer_max)}
    run = FaultRun(
        "slow_database", tmp_path, database_url=database_url, broker=fault_broker, env=env
    )
    try:
        await run.start()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(_SLOW_WRITES)
            held = await _sample_during(run, slow_s)
            await conn.execute(_FAST_AGAIN)
        fast_at = time.time()
        await run.recovery(fast_at, baseline=await run.stored_writes())
        await asyncio.sleep(SCALE.steady_s)
        result = await run.finish()
    finally:
        await run.close()
    result.notes.update(held, slow_s=slow_s, heartbeat_buffer_max=buffer_max)
    result.save()
    _assert_nothing_lost(result)
    assert held["heartbeats_buffered_max"] <= buffer_max
    assert held["mqtt_queued_max"] <= 10_000
    assert held["alarms_in_progress_max"] <= 16
    assert result.heartbeats_dropped_counted > 0, "the load outran the database: overflow counted"


async def test_the_service_stops_on_sigterm_while_the_database_is_down(
    tmp_path: Path, private_postgres: tuple[PrivatePostgres, str], fault_broker: PrivateBroker
) -> None:
    """No write retried forever at shutdown: buffered telemetry gets TELECARE_SHUTDOWN_FLUSH_S
    (here 3 s), what is left is counted and logged, and the process exits cleanly; alarms in
    progress are left to the broker (not PUBACKed) for the next run."""
    cluster, database_url = private_postgres
    env = {"TELECARE_SHUTDOWN_FLUSH_S": "3", "TELECARE_LOG_LEVEL": "INFO"}
    run = FaultRun("shutdown", tmp_path, database_url=database_url, broker=fault_broker, env=env)
    try:
        await run.start()
        await asyncio.to_thread(cluster.stop, "immediate")

        async def buffered() -> bool:
            metrics = await run.service.metrics()
            return metrics.get('telecare_write_buffered{what="heartbeats"}', 0) > 0

        await wait_for(buffered, within_s=30, what="heartbeats waiting for the database")
        exit_code = await asyncio.to_thread(run.service.stop)
    finally:
        await run.close()
    assert exit_code == 0
    assert "rows not written at shutdown what=heartbeats" in run.service.log_text()
