"""The MQTT consumer: every device message is validated, routed and never blocks the others."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import aiomqtt
from pydantic import BaseModel

from core.backoff import backoff_delay
from core.db import Pool
from core.metrics import Metrics
from core.mqtt_url import parse_mqtt_url
from core.notifications import DEVICE_CHANGED, follow
from core.observers import TelemetryObserver
from core.protocol import (
    TOPIC_ROOT,
    Ack,
    Alarm,
    BadTopic,
    Heartbeat,
    MessageKind,
    Status,
    parse_topic,
    topic_for,
)
from core.settings import Settings
from core.wire import Rejection, decode
from ingest.alarms import AlarmStore
from ingest.directory import DeviceDirectory
from ingest.heartbeats import HeartbeatWriter, ReceivedHeartbeat
from ingest.quarantine import Quarantine
from ingest.status import record_status

log = logging.getLogger(__name__)

SUBSCRIPTION = f"{TOPIC_ROOT}/#"


class Ingest:
    """Owns the broker connection of the ingest role and everything it feeds."""

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
        self.heartbeats = HeartbeatWriter(
            pool,
            metrics,
            batch_size=settings.heartbeat_batch_size,
            flush_ms=settings.heartbeat_flush_ms,
            buffer_max=settings.heartbeat_buffer_max,
        )
        self._alarms = AlarmStore(pool, metrics, self._publish_ack)
        self._client: aiomqtt.Client | None = None
        self._in_flight = asyncio.Semaphore(settings.alarm_workers * 4)
        self.connected = asyncio.Event()

    def add_observer(self, observer: TelemetryObserver) -> None:
        self._observers.append(observer)

    async def run(self) -> None:
        """Run until cancelled; on cancellation, write what is buffered before returning."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.heartbeats.run(), name="ingest.heartbeat_writer")
                tg.create_task(self._quarantine.run(), name="ingest.quarantine_writer")
                tg.create_task(
                    follow(
                        self._settings.database_url,
                        DEVICE_CHANGED,
                        self._directory.refresh,
                        on_connected=self._directory.reload,
                    ),
                    name="ingest.device_directory",
                )
                tg.create_task(self._consume_forever(tg), name="ingest.mqtt_consumer")
        finally:
            await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        try:
            await self.heartbeats.flush()
        except Exception:
            log.exception("heartbeats buffered at shutdown could not be written")

    async def _consume_forever(self, tg: asyncio.TaskGroup) -> None:
        broker = parse_mqtt_url(self._settings.mqtt_url)
        attempt = 0
        while True:
            try:
                # A persistent session: the broker queues QoS 1 messages while we are away.
                async with broker.client(
                    identifier=self._settings.mqtt_client_id, clean_session=False
                ) as client:
                    await client.subscribe(SUBSCRIPTION, qos=1)
                    self._client = client
                    self.connected.set()
                    attempt = 0
                    log.info("mqtt connected host=%s port=%d", broker.host, broker.port)
                    async for message in client.messages:
                        await self._dispatch(message, tg)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("mqtt connection lost error=%s retry_in_s=%.1f", exc, delay)
                await asyncio.sleep(delay)

    async def _dispatch(self, message: aiomqtt.Message, tg: asyncio.TaskGroup) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        received_at = datetime.now(UTC)
        try:
            parsed = parse_topic(topic)
        except BadTopic as exc:
            self._metrics.messages_received.labels("unknown").inc()
            self._quarantine.reject(
                topic=topic, device_id=None, reason="bad_topic", detail=exc.why, payload=payload
            )
            return
        if parsed.kind is MessageKind.ACK:
            return  # our own acknowledgements to devices
        self._metrics.messages_received.labels(parsed.kind.value).inc()
        try:
            body = decode(parsed.kind, payload)
        except Rejection as exc:
            self._reject(
                topic, parsed.device_id, exc, payload, tg, alarm=parsed.kind is MessageKind.ALARM
            )
            return
        known = self._directory.known(parsed.device_id)
        if known is True and isinstance(body, Heartbeat):
            self._take_heartbeat(parsed.device_id, body, received_at)  # the hot path: no await
            return
        if known is True and isinstance(body, Status):
            # Observers hear it now, in arrival order with the heartbeats; the write follows.
            self._tell_status(parsed.device_id, body, received_at)
        await self._in_flight.acquire()
        task = tg.create_task(
            self._handle(topic, parsed.device_id, body, payload, received_at, tg, known is True),
            name=f"ingest.{parsed.kind.value}[{parsed.device_id}]",
        )
        task.add_done_callback(lambda _: self._in_flight.release())

    async def _handle(
        self,
        topic: str,
        device_id: str,
        body: BaseModel,
        payload: bytes,
        received_at: datetime,
        tg: asyncio.TaskGroup,
        told: bool,
    ) -> None:
        try:
            if not await self._directory.is_registered(device_id):
                self._reject(
                    topic,
                    device_id,
                    Rejection("unregistered_device", f"device {device_id!r} is not registered"),
                    payload,
                    tg,
                    alarm=isinstance(body, Alarm),
                )
                return
            if isinstance(body, Heartbeat):
                self._take_heartbeat(device_id, body, received_at)
            elif isinstance(body, Alarm):
                await self._alarms.take(device_id, body, received_at)
            elif isinstance(body, Status):
                if not told:
                    self._tell_status(device_id, body, received_at)
                await record_status(self._pool, device_id, body, received_at)
        except Exception:
            log.exception("message handling failed topic=%s", topic)

    def _tell_status(self, device_id: str, status: Status, received_at: datetime) -> None:
        for observer in self._observers:
            observer.status_received(device_id, received_at, status)

    def _take_heartbeat(self, device_id: str, beat: Heartbeat, received_at: datetime) -> None:
        if self._directory.is_repeat(device_id, beat.msg_id):
            self._metrics.messages_received.labels("heartbeat_duplicate").inc()
            return
        self.heartbeats.add(ReceivedHeartbeat(device_id, received_at, beat))
        for observer in self._observers:
            observer.heartbeat_received(device_id, received_at, beat)

    def _reject(
        self,
        topic: str,
        device_id: str,
        rejection: Rejection,
        payload: bytes,
        tg: asyncio.TaskGroup,
        *,
        alarm: bool,
    ) -> None:
        self._quarantine.reject(
            topic=topic,
            device_id=device_id,
            reason=rejection.reason,
            detail=rejection.detail,
            payload=payload,
        )
        if alarm:
            msg_id = _msg_id_of(payload)
            tg.create_task(
                self._alarms.acknowledge(device_id, msg_id, "rejected", rejection.reason),
                name=f"ingest.reject_ack[{device_id}]",
            )

    async def _publish_ack(self, device_id: str, ack: Ack) -> None:
        client = self._client
        if client is None:
            raise ConnectionError("not connected to the broker")
        await client.publish(
            topic_for(device_id, MessageKind.ACK), ack.model_dump_json(exclude_none=True), qos=1
        )


def _msg_id_of(payload: bytes) -> str:
    """The msg_id of a rejected alarm, when one can be read, so the device can match the ack."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return ""
    msg_id = data.get("msg_id") if isinstance(data, dict) else None
    return msg_id if isinstance(msg_id, str) else ""
