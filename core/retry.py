"""Database writes that must not be dropped: retried with back-off until they succeed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.backoff import backoff_delay
from core.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


async def until_written(
    write: Callable[[], Awaitable[T]], *, what: str, context: str, metrics: Metrics
) -> T:
    """Run `write` until it succeeds, counting and logging each failure. Cancellation passes."""
    attempt = 0
    while True:
        try:
            return await write()
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, cap_s=5)
            metrics.db_write_failures.labels(what).inc()
            log.warning(
                "write not yet done what=%s %s attempt=%d retry_in_s=%.2f error=%s",
                what,
                context,
                attempt,
                delay,
                exc,
            )
            await asyncio.sleep(delay)
