"""PostgreSQL LISTEN/NOTIFY: how processes learn that a device was registered or changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
from psycopg import AsyncConnection

from telecare.core.backoff import backoff_delay

log = logging.getLogger(__name__)

DEVICE_CHANGED = "telecare_device_changed"


async def notify(conn: AsyncConnection, channel: str, payload: str) -> None:
    """Send a notification; inside a transaction it is delivered only on commit."""
    await conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])


async def follow(
    database_url: str,
    channel: str,
    on_payload: Callable[[str], Awaitable[None]],
    *,
    on_connected: Callable[[], Awaitable[None]],
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Deliver each notification on `channel` to `on_payload`, forever, reconnecting as needed.

    `on_connected` runs after every (re)connection, once LISTEN is in place, so the caller can
    reload whatever it may have missed while disconnected; `on_lost` when the connection goes.
    """
    attempt = 0
    while True:
        try:
            async for payload in _listen(database_url, channel, on_connected):
                attempt = 0
                try:
                    await on_payload(payload)
                except Exception:
                    log.exception(
                        "notification handler failed channel=%s payload=%s", channel, payload
                    )
        except (psycopg.OperationalError, OSError) as exc:
            if on_lost is not None:
                on_lost()
            attempt += 1
            delay = backoff_delay(attempt)
            log.warning(
                "listen connection lost channel=%s error=%s retry_in_s=%.1f", channel, exc, delay
            )
            await asyncio.sleep(delay)


async def _listen(
    database_url: str, channel: str, on_connected: Callable[[], Awaitable[None]]
) -> AsyncIterator[str]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {channel}")  # channel names are our own constants
        await on_connected()
        async for notification in conn.notifies():
            yield notification.payload
