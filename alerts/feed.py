"""When the alert engine runs without the ingest in its process, it reads telemetry from MQTT."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import aiomqtt

from telecare.core.backoff import backoff_delay
from telecare.core.settings import Settings
from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import (
    TOPIC_ROOT,
    BadTopic,
    Heartbeat,
    MessageKind,
    Status,
    parse_topic,
)
from telecare.protocol.telemetry_observer import TelemetryObserver

log = logging.getLogger(__name__)


async def feed_from_mqtt(
    settings: Settings, observer: TelemetryObserver, connected: asyncio.Event
) -> None:
    """Deliver valid heartbeats and status messages to the observer; the ingest stores them."""
    broker = settings.broker()
    attempt = 0
    while True:
        try:
            async with broker.client(
                identifier=f"telecare-alerts-{uuid.uuid4().hex[:8]}", clean_session=True
            ) as client:
                await client.subscribe(f"{TOPIC_ROOT}/+/heartbeat", qos=0)
                await client.subscribe(f"{TOPIC_ROOT}/+/status", qos=1)
                connected.set()
                attempt = 0
                async for message in client.messages:
                    _deliver(observer, message)
        except aiomqtt.MqttError as exc:
            connected.clear()
            attempt += 1
            delay = backoff_delay(attempt)
            log.warning("alerts feed lost the broker error=%s retry_in_s=%.1f", exc, delay)
            await asyncio.sleep(delay)


def _deliver(observer: TelemetryObserver, message: aiomqtt.Message) -> None:
    if not isinstance(message.payload, bytes):
        return
    try:
        topic = parse_topic(message.topic.value)
        body = decode(topic.kind, message.payload)
    except (BadTopic, Rejection):
        return  # the ingest quarantines it
    now = datetime.now(UTC)
    if topic.kind is MessageKind.HEARTBEAT and isinstance(body, Heartbeat):
        observer.heartbeat_received(topic.device_id, now, body)
    elif topic.kind is MessageKind.STATUS and isinstance(body, Status):
        observer.status_received(topic.device_id, now, body)
