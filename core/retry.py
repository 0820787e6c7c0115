"""Database writes that must not be dropped: retried with back-off until they succeed.

A database that is down fails each attempt at once; one that hangs (paused, partitioned) would
hold an attempt forever, so each attempt may carry a deadline. Errors that no retry can cure
(the data itself is refused) can be named in `give_up_on`: they are raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


async def until_written(
    write: Callable[[], Awaitable[T]],
    *,
    what: str,
    context: str,
    metrics: Metrics,
    attempt_timeout_s: float | None = None,
    give_up_on: tuple[type[Exception], ...] = (),
) -> T:
    """Run `write` until it succeeds, counting and logging each failure. Cancellation passes."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(attempt_timeout_s):
                return await write()
        except give_up_on:
            metrics.db_write_failures.labels(what).inc()
            raise
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, cap_s=5)
            metrics.db_write_failures.labels(what).inc()
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
