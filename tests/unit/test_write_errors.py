"""Which write failures a retry can cure (core/retry.py), and `until_written` giving up on the
others when asked to: no services, the exceptions psycopg raises built by hand."""

from __future__ import annotations

import asyncio

import psycopg
import psycopg.errors
import psycopg_pool
import pytest

from telecare.core import retry
from telecare.core.metrics import Metrics
from telecare.core.retry import is_permanent, is_transient, until_written

TRANSIENT: list[BaseException] = [
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.CannotConnectNow("the database system is starting up"),
    psycopg.errors.TooManyConnections("sorry, too many clients already"),
    psycopg.errors.DiskFull("could not extend file"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    psycopg.InterfaceError("the connection is closed"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    OSError(113, "No route to host"),
]

PERMANENT: list[BaseException] = [
    psycopg.DataError("invalid input syntax"),
    psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
    psycopg.errors.StringDataRightTruncation("value too long"),
    psycopg.IntegrityError("constraint violated"),
    psycopg.errors.ForeignKeyViolation("violates foreign key constraint"),
    psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
    psycopg.errors.NotNullViolation("null value in column"),
    psycopg.ProgrammingError("cannot adapt type"),
    psycopg.errors.UndefinedColumn('column "x" does not exist'),
    psycopg.NotSupportedError("not supported"),
    psycopg.errors.InFailedSqlTransaction("current transaction is aborted"),
    TypeError("Object of type set is not JSON serializable"),
    ValueError("not an alert type"),
    KeyError("subject"),
    AttributeError("'NoneType' object has no attribute 'value'"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_of_the_way_to_the_database_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)
    assert not is_permanent(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_refused_data_statements_and_bugs_are_permanent(exc: BaseException) -> None:
    assert is_permanent(exc)
    assert not is_transient(exc)


class _Flaky:
    """Fails with each of `errors` in turn, then answers `done`."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.fixture(autouse=True)
def _no_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The back-off is jittered up to seconds; what is tested here is which errors retry."""
    monkeypatch.setattr(retry, "backoff_delay", lambda attempt, cap_s: 0.0)


def _failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("telecare_db_write_failures_total", {"what": "t"})
    return value or 0.0


async def test_transient_failures_are_retried_until_the_write_succeeds() -> None:
    metrics = Metrics()
    write = _Flaky(psycopg.OperationalError("down"), TimeoutError(), ConnectionResetError())
    result = await until_written(
        write, what="t", context="", metrics=metrics, give_up_if=is_permanent
    )
    assert result == "done"
    assert write.calls == 4
    assert _failures(metrics) == 3


@pytest.mark.parametrize(
    "exc",
    [psycopg.errors.UntranslatableCharacter("nul"), TypeError("bug")],
    ids=lambda e: type(e).__name__,
)
async def test_a_permanent_failure_is_raised_at_once_and_counted(exc: Exception) -> None:
    metrics = Metrics()
    write = _Flaky(psycopg.OperationalError("down"), exc)
    with pytest.raises(type(exc)):
        await until_written(write, what="t", context="", metrics=metrics, give_up_if=is_permanent)
    assert write.calls == 2
    assert _failures(metrics) == 2


async def test_without_a_rule_to_give_up_every_failure_is_retried() -> None:
    """What the ingest's callers rely on: a bug or a refusal they did not name is retried."""
    write = _Flaky(TypeError("bug"), psycopg.DataError("refused"))
    assert await until_written(write, what="t", context="", metrics=Metrics()) == "done"
    assert write.calls == 3


async def test_give_up_on_still_names_the_errors_to_raise() -> None:
    write = _Flaky(psycopg.OperationalError("down"), psycopg.errors.UniqueViolation("dup"))
    with pytest.raises(psycopg.IntegrityError):
        await until_written(
            write,
            what="t",
            context="",
            metrics=Metrics(),
            give_up_on=(psycopg.DataError, psycopg.IntegrityError),
        )
    assert write.calls == 2


async def test_an_attempt_past_its_deadline_is_a_transient_failure() -> None:
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # a database that answers nothing
        return "done"

    result = await until_written(
        hangs_once,
        what="t",
        context="",
        metrics=Metrics(),
        attempt_timeout_s=0.05,
        give_up_if=is_permanent,
    )
    assert (result, calls) == ("done", 2)
