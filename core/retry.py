"""Database writes that must not be dropped: retried with back-off until they succeed.

A database that is down fails each attempt at once; one that hangs (paused, partitioned) would
hold an attempt forever, so each attempt may carry a deadline. Errors that no retry can cure
(the data itself is refused) can be named in `give_up_on`, or recognised by `give_up_if`
(e.g. `is_permanent`): they are raised to the caller.

`is_transient` is the one place that says which failures a retry can cure. It leans towards
"transient" for anything about the connection: a retry of a permanent error only delays (and
the delay is visible), while a transient error taken for permanent would throw good writes away
whenever the database is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import psycopg.errors

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures of the way to the database, not of what was sent: the connection, the server's state
# (shutting down, starting, out of connections or disk, a lock or a serialization conflict, a
# statement cancelled) or a deadline. OperationalError covers the pool's own timeouts too.
_TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,  # "the connection is closed / lost" on a connection gone bad
    psycopg.errors.ReadOnlySqlTransaction,  # a primary that failed over to a standby
    psycopg.errors.IdleInTransactionSessionTimeout,  # the server ended the session
    OSError,  # ConnectionError, socket errors and TimeoutError (the attempt's deadline)
)


def is_transient(exc: BaseException) -> bool:
    """True when the same write may succeed later unchanged: retry it. False for errors about
    the write itself (DataError, IntegrityError, ProgrammingError, NotSupportedError, other
    InternalErrors) and for every other exception, which is a bug: retrying cannot cure it."""
    return isinstance(exc, _TRANSIENT)


def is_permanent(exc: BaseException) -> bool:
    """The converse of `is_transient`, for `until_written(give_up_if=...)`."""
    return not is_transient(exc)


async def until_written(
    write: Callable[[], Awaitable[T]],
    *,
    what: str,
    context: str,
    metrics: Metrics,
    attempt_timeout_s: float | None = None,
    give_up_on: tuple[type[Exception], ...] = (),
    give_up_if: Callable[[Exception], bool] | None = None,
) -> T:
    """Run `write` until it succeeds, counting and logging each failure. Cancellation passes.

    A failure of a type in `give_up_on`, or one `give_up_if` answers True for, is counted and
    raised at once; without either, every exception is retried."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(attempt_timeout_s):
                return await write()
        except give_up_on:
            metrics.db_write_failures.labels(what).inc()
            raise
        except Exception as exc:
            metrics.db_write_failures.labels(what).inc()
            if give_up_if is not None and give_up_if(exc):
                raise
            attempt += 1
            delay = backoff_delay(attempt, cap_s=5)
            error = (
                "no answer within the attempt's deadline" if isinstance(exc, TimeoutError) else exc
            )
            log.warning(
                "write not yet done what=%s %s attempt=%d retry_in_s=%.2f error=%s",
                what,
                context,
                attempt,
                delay,
                error,
            )
            await asyncio.sleep(delay)
