"""When the alert engine runs without the ingest in its process, it reads telemetry from MQTT.

The subscription is a clean session (a persistent one per process would be left behind on the
broker by every process that ever ran): what was published while it was away reaches this
process only through the database, so after a reconnection `reconnected()` is called and the
engine reloads its partitions (holding what arrives meanwhile). The feed canary
(protocol/canary.py) goes out and comes back on this same connection.

It runs on the lean client (mqtt/subscription.py), as the ingest's telemetry does: each message
handled as it is read, a broker that stops answering noticed within a keep-alive period, a
refused subscription a failed connection retried with back-off.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from telecare.core.settings import Settings
from telecare.mqtt.client import MqttConnection
from telecare.mqtt.subscription import Subscription
from telecare.protocol.canary import Canary
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
    settings: Settings,
    observer: TelemetryObserver,
    connected: asyncio.Event,
    *,
    canary: Canary | None = None,
    reconnected: Callable[[], None] | None = None,
) -> None:
    """Deliver valid heartbeats and status messages to the observer; the ingest stores them."""
    # QoS 1 for all: the broker may reorder QoS 0 ahead of QoS 1 for a session, and the canary
    # proves only what came before it.
    filters = [(f"{TOPIC_ROOT}/+/heartbeat", 1), (f"{TOPIC_ROOT}/+/status", 1)]
    if canary is not None:
        filters.append((canary.topic, 1))
    connections = 0

    def on_connected(conn: MqttConnection) -> None:
        nonlocal connections
        connections += 1
        conn.closed.add_done_callback(lambda _: connected.clear())
        connected.set()
        if connections > 1 and reconnected is not None:
            reconnected()

    subscription = Subscription(
        settings.broker(),
        name="alerts-feed",
        identifier=f"telecare-alerts-{uuid.uuid4().hex[:8]}",
        filters=filters,
        on_message=functools.partial(_deliver, observer, canary),
        clean_session=True,
        on_connected=on_connected,
    )
    if canary is not None:
        canary.publish_with(subscription.publish)
    await subscription.run()


def _deliver(
    observer: TelemetryObserver, canary: Canary | None, topic_name: str, payload: bytes
) -> None:
    if canary is not None and topic_name == canary.topic:
        canary.received(topic_name, payload)
        return
    try:
        topic = parse_topic(topic_name)
        body = decode(topic.kind, payload)
    except (BadTopic, Rejection):
        return  # the ingest quarantines it
    now = datetime.now(UTC)
    if topic.kind is MessageKind.HEARTBEAT and isinstance(body, Heartbeat):
        observer.heartbeat_received(topic.device_id, now, body)
    elif topic.kind is MessageKind.STATUS and isinstance(body, Status):
        observer.status_received(topic.device_id, now, body)
