"""Alarms: committed first, acknowledged to the device after. Never lost, never stored twice."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

import psycopg

from telecare.core.metrics import Metrics
from telecare.core.retry import until_written
from telecare.db.pool import Pool
from telecare.protocol.messages import Ack, Alarm, alarm_severity

log = logging.getLogger(__name__)

AckResult = Literal["accepted", "duplicate", "rejected"]
PublishAck = Callable[[str, Ack], Awaitable[None]]

_INSERT = """
INSERT INTO alarms (device_id, msg_id, event, severity, device_ts, seq, peripheral, detail,
                    received_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (device_id, msg_id) DO NOTHING
RETURNING id
"""


class AlarmRefused(Exception):
    """The database refuses the alarm itself (not a passing failure): no retry can store it."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(f"the database refuses this alarm: {type(error).__name__}: {error}")


class AlarmStore:
    def __init__(
        self, pool: Pool, metrics: Metrics, publish_ack: PublishAck, *, attempt_timeout_s: float
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._publish_ack = publish_ack
        self._attempt_timeout_s = attempt_timeout_s

    async def take(self, device_id: str, alarm: Alarm, received_at: datetime) -> AckResult:
        """Store the alarm (retrying while the database is away), then acknowledge it.

        Each attempt has a deadline: an attempt that timed out may still have committed, so a
        retry can find the alarm stored and answer `duplicate` (it is stored once either way).
        AlarmRefused when the database refuses the row itself (nothing is acknowledged then).
        """
        try:
            result = await until_written(
                functools.partial(self._store, device_id, alarm, received_at),
                what="alarm",
                context=f"device={device_id} msg_id={alarm.msg_id}",
                metrics=self._metrics,
                attempt_timeout_s=self._attempt_timeout_s,
                give_up_on=(psycopg.DataError, psycopg.IntegrityError),
            )
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            raise AlarmRefused(exc) from exc
        await self.acknowledge(device_id, alarm.msg_id, result)
        return result

    async def acknowledge(
        self, device_id: str, msg_id: str, result: AckResult, reason: str | None = None
    ) -> None:
        ack = Ack(msg_id=msg_id, result=result, ts=datetime.now(UTC), reason=reason)
        try:
            await self._publish_ack(device_id, ack)
            self._metrics.alarm_acks.labels(result).inc()
        except Exception as exc:
            # The device re-sends an unacknowledged alarm; its repeat gets `duplicate`.
            log.warning("ack publish failed device=%s msg_id=%s error=%s", device_id, msg_id, exc)

    async def _store(self, device_id: str, alarm: Alarm, received_at: datetime) -> AckResult:
        # The pool's connections are in autocommit: the INSERT is committed when it returns.
        async with self._pool.connection(timeout=self._attempt_timeout_s) as conn:
            cur = await conn.execute(
                _INSERT,
                [
                    device_id,
                    alarm.msg_id,
                    alarm.event.value,
                    alarm_severity(alarm.event),
                    alarm.ts,
                    alarm.seq,
                    alarm.peripheral,
                    alarm.detail,
                    received_at,
                ],
            )
            row = await cur.fetchone()
        if row is None:
            log.info("alarm duplicate device=%s msg_id=%s", device_id, alarm.msg_id)
            return "duplicate"
        log.info(
            "alarm stored id=%d device=%s msg_id=%s event=%s",
            row[0],
            device_id,
            alarm.msg_id,
            alarm.event.value,
        )
        return "accepted"
