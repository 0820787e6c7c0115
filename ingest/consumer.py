"""The MQTT consumer: every device message is validated, routed and never blocks the others.

Two persistent MQTT sessions, so that neither can hold up the other:

- **telemetry** (`telecare/v1/#`, alarms and acks left out): heartbeats and status messages go
  to bounded buffers written in batches; bad input is quarantined. Nothing here waits for the
  database, so it keeps up (and keeps the alert engine fed) while the database is away; only
  the buffers' bounds can cost telemetry, counted in /metrics. It runs on the lean client
  (mqtt/subscription.py): each message is handled as it is read from the socket, with no
  queue and no task switch (paho's parsing and aiomqtt's queue were most of the ingest's CPU:
  BENCHMARKS.md). One connection (`{client_id}`) by default. The broker sends a connection at
  most its in-flight window of un-PUBACKed messages (Mosquitto's `max_inflight_messages`, 20),
  which holds one to about 12,000 messages a second; with TELECARE_MQTT_TELEMETRY_CONNECTIONS
  = N > 1, N connections (`{client_id}-t1` .. `-tN`) share one subscription
  (`$share/{client_id}/telecare/v1/#`) and four reach the broker's own limit. Mosquitto 2.0
  does not keep a shared subscription across its own restart, so heartbeats published between
  a broker restart and the ingest's reconnection are lost then (docs/OPERATIONS.md).
- **alarms** (`{client_id}-alarms`, `telecare/v1/+/alarm`): an alarm is PUBACKed only once it
  is committed and answered (ingest/alarm_intake.py), so the broker, not this process, holds
  the alarms the database cannot take yet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from telecare.alarms.store import AlarmStore
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db.notifications import DEVICE_CHANGED, follow
from telecare.db.pool import Pool
from telecare.ingest.alarm_intake import AlarmIntake
from telecare.ingest.batches import BatchWriter
from telecare.ingest.directory import DeviceDirectory
from telecare.ingest.heartbeats import HeartbeatWriter
from telecare.ingest.quarantine import Quarantine
from telecare.ingest.status import StatusWriter
from telecare.ingest.telemetry_intake import TelemetryIntake
from telecare.mqtt.client import OnMessage
from telecare.mqtt.persistent_session import MqttSession
from telecare.mqtt.subscription import Subscription
from telecare.protocol.canary import Canary
from telecare.protocol.messages import TOPIC_ROOT, Ack, MessageKind
from telecare.protocol.messages import topic_for as protocol_topic
from telecare.protocol.telemetry_observer import TelemetryObserver

log = logging.getLogger(__name__)

W = TypeVar("W", bound=BatchWriter[Any])

ALARM_SUBSCRIPTION = f"{TOPIC_ROOT}/+/{MessageKind.ALARM.value}"


class Ingest:
    """Owns the broker sessions of the ingest role and everything they feed."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        metrics: Metrics,
        observers: Sequence[TelemetryObserver] = (),
        canary: Canary | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._observers = list(observers)
        self._directory = DeviceDirectory(pool)
        self._quarantine = Quarantine(pool, metrics, keep=settings.quarantine_keep)
        timeout_s = settings.db_write_timeout_s
        self.heartbeats = self._writer(
            HeartbeatWriter, settings.heartbeat_buffer_max, writers=settings.heartbeat_writers
        )
        self.statuses = self._writer(StatusWriter, settings.status_buffer_max, writers=1)
        broker = self._broker = settings.broker()
        self._telemetry_sessions: list[Subscription] = []
        self._telemetry_connected = asyncio.Event()
        self._alarm_session = MqttSession(
            broker,
            name="alarms",
            identifier=f"{settings.mqtt_client_id}-alarms",
            subscriptions=[(ALARM_SUBSCRIPTION, 1)],
            metrics=metrics,
            queue_max=settings.mqtt_queue_max,
            manual_ack=True,
            receive_maximum=settings.alarm_inflight_max,
        )
        store = AlarmStore(pool, metrics, self._publish_ack, attempt_timeout_s=timeout_s)
        self._alarms = AlarmIntake(
            store,
            self._directory,
            self._quarantine,
            metrics,
            workers=settings.alarm_workers,
            attempt_timeout_s=timeout_s,
        )
        self._telemetry = TelemetryIntake(
            self._directory,
            self._quarantine,
            metrics,
            heartbeats=self.heartbeats,
            statuses=self.statuses,
            observers=self._observers,
            canary=canary,
        )
        if canary is not None:
            canary.publish_with(self._publish_canary)
        self._directory_loaded = asyncio.Event()

    def _writer(self, kind: type[W], buffer_max: int, *, writers: int) -> W:
        return kind(
            self._pool,
            self._metrics,
            batch_size=self._settings.heartbeat_batch_size,
            batch_max=self._settings.heartbeat_batch_max,
            flush_ms=self._settings.heartbeat_flush_ms,
            buffer_max=buffer_max,
            attempt_timeout_s=self._settings.db_write_timeout_s,
            writers=writers,
        )

    def add_observer(self, observer: TelemetryObserver) -> None:
        self._observers.append(observer)

    def is_connected(self) -> bool:
        sessions = self._telemetry_sessions
        return (
            bool(sessions)
            and all(session.connected.is_set() for session in sessions)
            and self._alarm_session.connected.is_set()
        )

    async def wait_connected(self) -> None:
        await self._telemetry_connected.wait()
        for session in self._telemetry_sessions:
            await session.connected.wait()
        await self._alarm_session.connected.wait()

    async def run(self) -> None:
        """Run until cancelled; on cancellation, write what is buffered before returning."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.heartbeats.run(), name="ingest.heartbeat_writer")
                tg.create_task(self.statuses.run(), name="ingest.status_writer")
                tg.create_task(self._quarantine.run(), name="ingest.quarantine_writer")
                tg.create_task(self._telemetry.run(), name="ingest.telemetry_counts")
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
                self._telemetry_sessions = self._telemetry_subscriptions(
                    functools.partial(self._telemetry.handle, tg)
                )
                self._telemetry_connected.set()
                for session in self._telemetry_sessions:
                    tg.create_task(session.run(), name=f"ingest.mqtt_{session.name}")
                tg.create_task(
                    self._alarm_session.run(functools.partial(self._alarms.handle, tg)),
                    name="ingest.mqtt_alarms",
                )
        finally:
            await asyncio.shield(self._final_flush())

    def _telemetry_subscriptions(self, handle: OnMessage) -> list[Subscription]:
        client_id = self._settings.mqtt_client_id
        count = self._settings.mqtt_telemetry_connections
        if count == 1:
            names = [(client_id, f"{TOPIC_ROOT}/#")]
        else:
            shared = f"$share/{client_id}/{TOPIC_ROOT}/#"
            names = [(f"{client_id}-t{n}", shared) for n in range(1, count + 1)]
        return [
            Subscription(
                self._broker,
                name="telemetry" if count == 1 else f"telemetry-{n}",
                identifier=identifier,
                filters=[(topic_filter, 1)],
                on_message=handle,
                clean_session=False,  # the broker keeps QoS 1 telemetry while we are away
            )
            for n, (identifier, topic_filter) in enumerate(names, start=1)
        ]

    async def _reload_directory(self) -> None:
        await self._directory.reload()
        self._directory_loaded.set()

    async def _final_flush(self) -> None:
        within_s = self._settings.shutdown_flush_s
        await asyncio.gather(
            self.heartbeats.flush(within_s=within_s), self.statuses.flush(within_s=within_s)
        )

    async def _publish_canary(self, topic: str, payload: bytes) -> None:
        """The feed canary goes out on the alarm session and comes back on the telemetry one
        (protocol/canary.py)."""
        link = self._alarm_session.link
        if link is None:
            raise ConnectionError("not connected to the broker")
        await link.publish(topic, payload, qos=1)

    async def _publish_ack(self, device_id: str, ack: Ack) -> None:
        link = self._alarm_session.link
        if link is None:
            raise ConnectionError("not connected to the broker")
        await link.publish(
            protocol_topic(device_id, MessageKind.ACK),
            ack.model_dump_json(exclude_none=True).encode(),
            qos=1,
        )
