"""The alert engine's writer (alerts/action_writer.py) against a real PostgreSQL: an action the
database refuses is put aside while the others are written in order; a full queue refuses
actions, counted and reported; a database that is away (stopped, or frozen with SIGSTOP) is
waited for, reported as a stall while it lasts, and everything is written in order once it is
back; each incident raises `alert_writer_stalled`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from telecare.alerts.action_writer import AlertWriter
from telecare.alerts.decisions import Action, Raise, Resolve
from telecare.alerts.types import AlertType
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db.migrations.runner import upgrade
from telecare.db.pool import Pool, open_pool
from tests.databases import create_database
from tests.postgres import PrivatePostgres
from tests.support import wait_for


@contextlib.asynccontextmanager
async def _pool_on(url: str) -> AsyncIterator[Pool]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await upgrade(conn)
    settings = Settings(database_url=url, db_pool_min=1, db_pool_max=2)
    async with open_pool(settings, name="alert-writer-test") as pool:
        yield pool


@pytest.fixture
async def pool(empty_database_url: str) -> AsyncIterator[Pool]:
    """A database of this test's own on the shared cluster."""
    async with _pool_on(empty_database_url) as opened:
        yield opened


async def _alerts(pool: Pool) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute("SELECT subject, type, severity, state, details FROM alerts ORDER BY id")
        return await cur.fetchall()


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _failed_attempts(metrics: Metrics) -> float:
    return _sample(metrics, "telecare_db_write_failures_total", what="alerts")


def _raise(subject: str, **fields: Any) -> Raise:
    return Raise(subject, AlertType.BATTERY_LOW, datetime.now(UTC), area="test", **fields)


async def _until(check: Callable[[], bool], *, within_s: float, what: str) -> None:
    async def answer() -> bool:
        return check()

    await wait_for(answer, within_s=within_s, what=what)


async def _drained(writer: AlertWriter, within_s: float = 30) -> None:
    async with asyncio.timeout(within_s):
        await writer.drained()


async def test_an_action_the_database_refuses_is_put_aside_and_the_rest_written_in_order(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    settings = Settings(database_url="postgresql://unused", alert_writer_stall_s=30)
    writer = AlertWriter.from_settings(settings, pool, metrics, name="refusing")
    actions: list[Action] = [
        _raise("t:a"),
        _raise("t:nul", details={"note": "a\x00b"}),  # jsonb has no NUL: a DataError
        _raise("t:b"),
        Raise("t:nobody", AlertType.BATTERY_LOW, datetime.now(UTC), device_id="no-such-device"),
        Resolve("t:a", datetime.now(UTC), "system"),
        _raise("t:c"),
    ]
    for action in actions:  # all queued before the writer runs: one batch
        assert writer.put(action)
    with caplog.at_level(logging.ERROR, logger="telecare.alerts.action_writer"):
        async with writer:
            await _drained(writer)

    rows = await _alerts(pool)
    assert [(r["subject"], r["state"]) for r in rows] == [
        ("t:a", "resolved"),  # raised, then resolved after the refused actions between
        ("t:b", "open"),
        ("t:c", "open"),
        ("alert_writer_stalled:refusing", "open"),
    ]
    assert [getattr(r.action, "subject", None) for r in writer.refused_actions] == [
        "t:nul",
        "t:nobody",
    ]
    assert "UntranslatableCharacter" in writer.refused_actions[0].error
    assert "ForeignKeyViolation" in writer.refused_actions[1].error
    assert writer.refused == 2
    assert _sample(metrics, "telecare_alert_actions_refused_total", reason="database") == 2
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("t:nul" in m and "UntranslatableCharacter" in m for m in logged), logged
    assert any("t:nobody" in m and "ForeignKeyViolation" in m for m in logged), logged

    own = rows[-1]
    assert (own["type"], own["severity"]) == ("alert_writer_stalled", "critical")
    assert own["details"]["refused"] == 2
    assert own["details"]["last_incident"] == "refused"
    assert "ForeignKeyViolation" in own["details"]["refused_error"]
    assert "t:nobody" in own["details"]["refused_action"]
    # Refusing one action is not a stall: the writer went on.
    assert writer.healthy
    assert _sample(metrics, "telecare_alert_writer_stalled") == 0


async def test_a_full_queue_refuses_the_newest_actions_counted_and_reported(pool: Pool) -> None:
    metrics = Metrics()
    writer = AlertWriter(pool, metrics, stall_s=1, name="overflowing", max_pending=3)
    accepted = [writer.put(_raise(f"q:{n}")) for n in range(5)]
    assert accepted == [True, True, True, False, False]
    assert writer.dropped == 2
    assert _sample(metrics, "telecare_alert_actions_refused_total", reason="queue_full") == 2
    assert not writer.healthy
    assert _sample(metrics, "telecare_alert_writer_stalled") == 1

    async with writer:
        await _drained(writer)
        rows = await _alerts(pool)
        assert [r["subject"] for r in rows] == [
            "alert_writer_stalled:overflowing",  # written ahead of the queue
            "q:0",
            "q:1",
            "q:2",
        ]
        assert rows[0]["details"]["dropped"] == 2
        assert rows[0]["details"]["last_incident"] == "queue_full"
        await _until(lambda: writer.healthy, within_s=5, what="healthy again")
        assert writer.put(_raise("q:after"))
        await _drained(writer)
    assert [r["subject"] for r in await _alerts(pool)][-1] == "q:after"


@pytest.fixture
def private_postgres() -> Iterator[tuple[PrivatePostgres, str]]:
    """A cluster of this test's own, that it may stop and freeze."""
    with PrivatePostgres() as cluster:
        yield cluster, create_database(cluster.url())


@pytest.mark.faults
@pytest.mark.parametrize("how", ["stopped", "frozen"])
async def test_a_database_away_is_a_stall_then_everything_is_written_in_order(
    private_postgres: tuple[PrivatePostgres, str], how: str
) -> None:
    """`stopped`: connections refused at once; `frozen`: SIGSTOP, nothing answers, each attempt
    ends at its deadline."""
    cluster, url = private_postgres
    metrics = Metrics()
    async with _pool_on(url) as pool:
        writer = AlertWriter(pool, metrics, stall_s=1, name=how, attempt_timeout_s=1)
        async with writer:
            writer.put(_raise("before"))
            await _drained(writer)

            if how == "stopped":
                await asyncio.to_thread(cluster.stop, "immediate")
            else:
                cluster.pause()
            try:
                # Per subject: raise, resolve, raise again. Written out of order, a resolve
                # would find nothing to resolve and the second raise would be a no-op.
                for n in range(5):
                    writer.put(_raise(f"x{n}"))
                    writer.put(Resolve(f"x{n}", datetime.now(UTC), "device"))
                    writer.put(_raise(f"x{n}"))
                await _until(lambda: not writer.healthy, within_s=15, what="stalled")
                assert writer.stalled_for_s >= 1
                assert writer.pending == 15
                assert _sample(metrics, "telecare_alert_writer_stalled") == 1
                assert _sample(metrics, "telecare_alert_actions_pending") == 15
                # Still retrying, still reported stalled.
                await _until(
                    lambda: _failed_attempts(metrics) >= 3, within_s=30, what="3 failed attempts"
                )
                assert not writer.healthy
                assert writer.stalled_for_s >= 1
            finally:
                if how == "stopped":
                    await asyncio.to_thread(cluster.start)
                else:
                    cluster.resume()

            await _drained(writer, within_s=60)
            assert writer.healthy
            assert writer.stalled_for_s == 0
            assert _sample(metrics, "telecare_alert_writer_stalled") == 0
            rows = await _alerts(pool)

    assert writer.refused == 0
    assert [(r["subject"], r["state"]) for r in rows[:-1]] == [
        ("before", "open"),
        *[(f"x{n}", state) for n in range(5) for state in ("resolved", "open")],
    ]
    own = rows[-1]
    assert (own["subject"], own["type"]) == (f"alert_writer_stalled:{how}", "alert_writer_stalled")
    assert own["details"]["last_incident"] == "stalled"
    assert own["details"]["stalled_s"] >= 1
    # Stopped: a lost connection, then no connection from the pool within the deadline.
    assert own["details"]["stall_error"].startswith(("OperationalError", "no answer within"))
    if how == "frozen":
        assert own["details"]["stall_error"] == "no answer within the attempt's deadline"
    assert own["details"]["refused"] == 0
