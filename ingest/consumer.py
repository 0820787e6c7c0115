"""The MQTT consumer: every device message is validated, routed and never blocks the others.

Two persistent MQTT sessions, so that neither can hold up the other:

- **telemetry** (`{client_id}`, `telecare/v1/#` except alarms and acks): heartbeats and status
  messages go to bounded buffers written in batches; bad input is quarantined. Nothing here
  waits for the database, so it keeps up (and keeps the alert engine fed) while the database
  is away; only the buffers' bounds can cost telemetry, counted in /metrics.
- **alarms** (`{client_id}-alarms`, `telecare/v1/+/alarm`): an alarm is PUBACKed only once it
  is committed and answered (ingest/alarm_intake.py), so the broker, not this process, holds
  the alarms the database cannot take yet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import aiomqtt

from core.db import Pool
from core.metrics import Metrics
from core.notifications import DEVICE_CHANGED, follow
from core.observers import TelemetryObserver
from core.protocol import TOPIC_ROOT, Ack, BadTopic, Heartbeat, MessageKind, Status, parse_topic
from core.protocol import topic_for as protocol_topic
from core.settings import Settings
from core.wire import Rejection, decode
from ingest.alarm_intake import AlarmIntake
from ingest.alarms import AlarmStore
from ingest.directory import DeviceDirectory
from ingest.heartbeats import HeartbeatRow, HeartbeatWriter
from ingest.mqtt_session import Link, MqttSession
from ingest.quarantine import Quarantine
from ingest.status import StatusRow, StatusWriter

log = logging.getLogger(__name__)

ALARM_SUBSCRIPTION = f"{TOPIC_ROOT}/+/{MessageKind.ALARM.value}"
# Lookups of devices the directory does not know, at once; beyond, their telemetry is dropped.
_LOOKUPS = 32


class Ingest:
    """Owns the broker sessions of the ingest role and everything they feed."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        metrics: Metrics,
        observers: Sequence[TelemetryObserver] = (),
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._observers = list(observers)
        self._directory = DeviceDirectory(pool)
        self._quarantine = Quarantine(pool, metrics, keep=settings.quarantine_keep)
        timeout_s = settings.db_write_timeout_s
        self.heartbeats = HeartbeatWriter(
            pool,
            metrics,
            batch_size=settings.heartbeat_batch_size,
            flush_ms=settings.heartbeat_flush_ms,
            buffer_max=settings.heartbeat_buffer_max,
            attempt_timeout_s=timeout_s,
        )
        self.statuses = StatusWriter(
            pool,
            metrics,
            batch_size=settings.heartbeat_batch_size,
            flush_ms=settings.heartbeat_flush_ms,
            buffer_max=settings.status_buffer_max,
            attempt_timeout_s=timeout_s,
        )
        broker = settings.broker()
        self._telemetry = MqttSession(
            broker,
            name="telemetry",
            identifier=settings.mqtt_client_id,
            subscriptions=[(f"{TOPIC_ROOT}/#", 1)],
            metrics=metrics,
            queue_max=settings.mqtt_queue_max,
        )
        self._alarm_session = MqttSession(
            broker,
            name="alarms",
            identifier=f"{settings.mqtt_client_id}-alarms",
            subscriptions=[(ALARM_SUBSCRIPTION, 1)],
            metrics=metrics,
            queue_max=settings.mqtt_queue_max,
            manual_ack=True,
        )
        store = AlarmStore(pool, metrics, self._publish_ack, attempt_timeout_s=timeout_s)
        self.alarms = AlarmIntake(
            store,
            self._directory,
            self._quarantine,
            metrics,
            workers=settings.alarm_workers,
            attempt_timeout_s=timeout_s,
        )
        self._lookups = asyncio.Semaphore(_LOOKUPS)
        self._directory_loaded = asyncio.Event()

    def add_observer(self, observer: TelemetryObserver) -> None:
        self._observers.append(observer)

    def is_connected(self) -> bool:
        return self._telemetry.connected.is_set() and self._alarm_session.connected.is_set()

    async def wait_connected(self) -> None:
        await self._telemetry.connected.wait()
        await self._alarm_session.connected.wait()

    async def run(self) -> None:
        """Run until cancelled; on cancellation, write what is buffered before returning."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.heartbeats.run(), name="ingest.heartbeat_writer")
                tg.create_task(self.statuses.run(), name="ingest.status_writer")
                tg.create_task(self._quarantine.run(), name="ingest.quarantine_writer")
                tg.create_task(
                    follow(
                        self._settings.database_url,
                        DEVICE_CHANGED,
                        self._directory.refresh,
                        on_connected=self._reload_directory,
                    ),
                    name="ingest.device_directory",
                )
                # Messages wait at the broker until the registered devices are known.
                await self._directory_loaded.wait()
                tg.create_task(
                    self._telemetry.run(functools.partial(self._on_telemetry, tg)),
                    name="ingest.mqtt_telemetry",
                )
                tg.create_task(
                    self._alarm_session.run(functools.partial(self.alarms.handle, tg)),
                    name="ingest.mqtt_alarms",
                )
        finally:
            await asyncio.shield(self._final_flush())

    async def _reload_directory(self) -> None:
        await self._directory.reload()
        self._directory_loaded.set()

    async def _final_flush(self) -> None:
        within_s = self._settings.shutdown_flush_s
        await asyncio.gather(
            self.heartbeats.flush(within_s=within_s), self.statuses.flush(within_s=within_s)
        )

    async def _on_telemetry(self, tg: asyncio.TaskGroup, _: Link, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        received_at = datetime.now(UTC)
        try:
            parsed = parse_topic(topic)
        except BadTopic as exc:
            if _is_alarm_topic(topic):
                return  # the alarm session quarantines it
            self._metrics.messages_received.labels("unknown").inc()
            self._quarantine.reject(
                topic=topic, device_id=None, reason="bad_topic", detail=exc.why, payload=payload
            )
            return
        if parsed.kind in (MessageKind.ACK, MessageKind.ALARM):
            return  # our own acknowledgements; alarms come on their own session
        self._metrics.messages_received.labels(parsed.kind.value).inc()
        try:
            body = decode(parsed.kind, payload)
        except Rejection as exc:
            self._quarantine.reject(
                topic=topic,
                device_id=parsed.device_id,
                reason=exc.reason,
                detail=exc.detail,
                payload=payload,
            )
            return
        known = self._directory.known(parsed.device_id)
        if known is True:
            self._take(parsed.device_id, body, received_at)  # the hot path: no await
        elif known is None:
            self._look_up(tg, topic, parsed.device_id, body, payload, received_at)
        else:
            self._unregistered(topic, parsed.device_id, payload)

    def _look_up(
        self,
        tg: asyncio.TaskGroup,
        topic: str,
        device_id: str,
        body: object,
        payload: bytes,
        received_at: datetime,
    ) -> None:
        """A device the directory has not heard of: ask the database, without waiting for it."""
        if self._lookups.locked():
            self._metrics.write_dropped.labels("telemetry", "lookups_busy").inc()
            return
        tg.create_task(
            self._look_up_and_take(topic, device_id, body, payload, received_at),
            name=f"ingest.lookup[{device_id}]",
        )

    async def _look_up_and_take(
        self, topic: str, device_id: str, body: object, payload: bytes, received_at: datetime
    ) -> None:
        async with self._lookups:
            try:
                registered = await self._directory.is_registered(device_id)
            except Exception as exc:
                self._metrics.write_dropped.labels("telemetry", "lookup_failed").inc()
                log.warning("device lookup failed device=%s error=%s", device_id, exc)
                return
        if registered:
            self._take(device_id, body, received_at)
        else:
            self._unregistered(topic, device_id, payload)

    def _unregistered(self, topic: str, device_id: str, payload: bytes) -> None:
        self._quarantine.reject(
            topic=topic,
            device_id=device_id,
            reason="unregistered_device",
            detail=f"device {device_id!r} is not registered",
            payload=payload,
        )

    def _take(self, device_id: str, body: object, received_at: datetime) -> None:
        if isinstance(body, Heartbeat):
            if self._directory.is_repeat(device_id, body.msg_id):
                self._metrics.messages_received.labels("heartbeat_duplicate").inc()
                return
            self.heartbeats.add(HeartbeatRow.of(device_id, received_at, body))
            for observer in self._observers:
                observer.heartbeat_received(device_id, received_at, body)
        elif isinstance(body, Status):
            for observer in self._observers:
                observer.status_received(device_id, received_at, body)
            self.statuses.add(StatusRow(received_at, device_id, body.state, body.ts, body.reason))

    async def _publish_ack(self, device_id: str, ack: Ack) -> None:
        link = self._alarm_session.link
        if link is None:
            raise ConnectionError("not connected to the broker")
        await link.client.publish(
            protocol_topic(device_id, MessageKind.ACK),
            ack.model_dump_json(exclude_none=True),
            qos=1,
        )


def _is_alarm_topic(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 4 and parts[-1] == MessageKind.ALARM.value
