"""A subscription that lasts: the lean client (mqtt/client.py), reconnecting with back-off,
each message handed synchronously to a handler as it is read from the socket.

No receive queue and no task switch per message: a handler that cannot keep up slows the
reading of the socket, and the broker holds (QoS 1, persistent session) or drops (QoS 0) what
waits, instead of this process's memory. A handler's error is logged with the topic, and the
next message is handled as usual.

A connection that cannot do its job is a failed connection, retried with back-off, counted
(`failures`, `refused_subscriptions`) and logged: a broker that refuses a filter (SUBACK 0x80)
would otherwise leave the subscriber up and deaf. A persistent session (clean_session False)
that the broker still holds keeps its subscriptions, so they are sent again only when the
broker no longer has the session (or on this process's first connection, when what an older
process left in it is not known). Shared filters (`$share/...`) are the exception, sent on every
connection: Mosquitto 2.0 restores a session from its persistence file after a restart but not
its shared subscriptions, and the session would be present and deaf.

`publish()` sends on the subscription's own connection: broker control (devices/dynsec.py)
publishes its commands and reads the answers on one connection, the engine's feed its canary.
`on_connected` is told of each new connection once its filters are granted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from telecare.core.backoff import backoff_delay
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt import packets
from telecare.mqtt.client import MqttConnection, MqttError, OnMessage, SubscribeRefused, connect

log = logging.getLogger(__name__)


class Subscription:
    """`run()` until cancelled; `connected` is set while a connection with its filters is up."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        name: str,
        identifier: str,
        filters: Sequence[tuple[str, int]],
        on_message: OnMessage,
        clean_session: bool,
        keepalive_s: int = 30,
        max_packet_size: int = packets.DEFAULT_MAX_PACKET_SIZE,
        on_connected: Callable[[MqttConnection], None] | None = None,
    ) -> None:
        self._broker = broker
        self.name = name
        self._identifier = identifier
        self._filters = filters
        self._handle = on_message
        self._clean_session = clean_session
        self._keepalive_s = keepalive_s
        self._max_packet_size = max_packet_size
        self._on_connected = on_connected
        # every filter was granted into the broker's session for this identifier, which it
        # keeps while session_present says so
        self._session_subscribed = False
        self._shared = any(topic_filter.startswith("$share/") for topic_filter, _ in filters)
        self.connected = asyncio.Event()
        self.connection: MqttConnection | None = None  # while connected
        self.failures = 0  # connections that failed or were lost, refused ones included
        self.refused_subscriptions = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                conn = await self._connect()
            except MqttError as exc:
                attempt += 1
                await self._wait(attempt, f"connect failed: {exc}")
                continue
            try:
                if self._shared or not (conn.session_present and self._session_subscribed):
                    await self._subscribe(conn)
                self.connection = conn
                self.connected.set()
                attempt = 0
                log.info(
                    "mqtt connected session=%s host=%s port=%d session_present=%s",
                    self.name,
                    self._broker.host,
                    self._broker.port,
                    conn.session_present,
                )
                if self._on_connected is not None:
                    self._on_connected(conn)
                await asyncio.shield(conn.closed)
                reason = str(conn.error or "connection lost")
            except SubscribeRefused as exc:
                self.refused_subscriptions += 1
                reason = str(exc)
            except MqttError as exc:
                reason = str(exc)
            finally:
                self.connection = None
                self.connected.clear()
                if conn.is_open:
                    await conn.disconnect()  # also on cancellation: a clean DISCONNECT
            attempt += 1
            await self._wait(attempt, reason)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish on this subscription's connection and, at QoS 1, wait for the broker's
        PUBACK; MqttError when not connected or the connection is lost meanwhile."""
        conn = self.connection
        if conn is None or not conn.is_open:
            raise MqttError("not connected to the broker")
        await conn.publish(topic, payload, qos=qos)

    async def _subscribe(self, conn: MqttConnection) -> None:
        self._session_subscribed = False
        await conn.subscribe_all(self._filters, session=self.name)
        self._session_subscribed = not self._clean_session

    async def _connect(self) -> MqttConnection:
        broker = self._broker
        return await connect(
            broker,
            client_id=self._identifier,
            username=broker.username,
            password=broker.password,
            keepalive_s=self._keepalive_s,
            on_message=self._on_message,
            clean_session=self._clean_session,
            max_packet_size=self._max_packet_size,
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._handle(topic, payload)
        except Exception:  # one bad message never stops the session
            log.exception("message handling failed session=%s topic=%s", self.name, topic)

    async def _wait(self, attempt: int, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        delay = backoff_delay(attempt)
        log.warning(
            "mqtt connection lost session=%s error=%s retry_in_s=%.1f", self.name, reason, delay
        )
        await asyncio.sleep(delay)
