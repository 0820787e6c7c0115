"""One persistent MQTT session of the ingest: reconnects with back-off, a bounded receive queue,
and (optionally) MQTT-level acknowledgements sent by the application, not on receipt.

On the lean client (mqtt/client.py), like the telemetry, but each message goes through a
queue to an async handler, since an alarm's handling waits for the database:

- the receive queue is bounded (`queue_max`): when it is full, the oldest message that may be
  dropped is dropped and counted (`telecare_mqtt_dropped_total{session}`);
- with `manual_ack=True` a QoS 1 message is PUBACKed only when the application says so
  (`Link.puback`), so the broker keeps it, and redelivers it after a reconnect, until then. The
  broker sends a client at most its in-flight window of un-PUBACKed messages and queues the
  rest in the persistent session, so those are never dropped here: only QoS 0 messages are.
  With `receive_maximum` the session is MQTT 5 and the window is the smaller of it and the
  broker's own `max_inflight_messages` (docs/OPERATIONS.md); a broker that does not speak
  MQTT 5 is spoken to in 3.1.1, and its own window alone applies.

The session is persistent (clean_session False): while the process is away the broker keeps
the subscription and the QoS 1 messages. The filters are subscribed again only when the broker
no longer has the session (`session_present` False) or on this process's first connection.
Messages queued and not yet handled when a connection ends are dropped with it: none was
PUBACKed, so the broker sends them again on the next connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import Message, MqttConnection, MqttError, connect

log = logging.getLogger(__name__)

Handler = Callable[["Link", Message], Awaitable[None]]
KEEPALIVE_S = 30


class Link:
    """One connection of the session. PUBACKs go out on it only while it is open: after a
    reconnect the broker redelivers what was not acknowledged under packet ids that may now
    belong to other messages, so an old id must never be acknowledged on the new connection."""

    def __init__(self, connection: MqttConnection) -> None:
        self.connection = connection

    @property
    def open(self) -> bool:
        return self.connection.is_open

    def puback(self, message: Message) -> None:
        if message.packet_id:
            self.connection.puback(message.packet_id)  # nothing when closed, or already acked

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish and, at QoS 1, wait for the broker's PUBACK; MqttError when it fails."""
        if not self.connection.is_open:
            raise MqttError("not connected to the broker")
        await self.connection.publish(topic, payload, qos=qos)


class _Inbox:
    """The messages of one connection waiting for the handler; `get()` answers None once the
    connection has ended."""

    def __init__(self, limit: int, *, drop_qos1: bool, on_drop: Callable[[], None]) -> None:
        self._limit = limit
        self._drop_qos1 = drop_qos1
        self._on_drop = on_drop
        self._items: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> None:
        if self._closed:
            return
        if len(self._items) >= self._limit and (self._drop_qos1 or message.qos == 0):
            self._on_drop()
            if not self._drop_qos1:
                return
            self._items.popleft()  # the oldest goes: the newest says more about now
        self._items.append(message)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Message | None:
        while not self._items:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class MqttSession:
    """`run(handler)` until cancelled; `connected` is set while a connection is up."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        name: str,
        identifier: str,
        subscriptions: Sequence[tuple[str, int]],
        metrics: Metrics,
        queue_max: int,
        manual_ack: bool = False,
        receive_maximum: int | None = None,
        keepalive_s: int = KEEPALIVE_S,
    ) -> None:
        self._broker = broker
        self.name = name
        self._identifier = identifier
        self._subscriptions = subscriptions
        self._manual_ack = manual_ack
        self._receive_maximum = receive_maximum
        self._keepalive_s = keepalive_s
        self._queue_max = queue_max
        self._queued = metrics.mqtt_queued.labels(name)
        self._dropped = metrics.mqtt_dropped.labels(name)
        # every filter was granted into the broker's session for this identifier, which it
        # keeps while session_present says so
        self._session_subscribed = False
        self.connected = asyncio.Event()
        self.link: Link | None = None
        self.failures = 0  # connections that failed or were lost, refused ones included
        self.last_error: str | None = None

    async def run(self, handle: Handler) -> None:
        attempt = 0
        while True:
            inbox = _Inbox(
                self._queue_max, drop_qos1=not self._manual_ack, on_drop=self._dropped.inc
            )
            try:
                conn = await self._connect(inbox)
            except MqttError as exc:
                attempt += 1
                await self._wait(attempt, f"connect failed: {exc}")
                continue

            def closed(_: object, conn: MqttConnection = conn, inbox: _Inbox = inbox) -> None:
                inbox.close()  # the handler finishes what it is handling, then gets None
                if self.link is not None and self.link.connection is conn:
                    self.link = None
                    self.connected.clear()

            conn.closed.add_done_callback(closed)
            try:
                if not (conn.session_present and self._session_subscribed):
                    await self._subscribe(conn)
                link = self.link = Link(conn)
                self.connected.set()
                attempt = 0
                log.info(
                    "mqtt connected session=%s host=%s port=%d protocol=%s session_present=%s",
                    self.name,
                    self._broker.host,
                    self._broker.port,
                    "5" if conn.protocol == 5 else "3.1.1",
                    conn.session_present,
                )
                await self._deliver(inbox, link, handle)
                reason = str(conn.error or "connection lost")
            except MqttError as exc:  # SubscribeRefused included
                reason = str(exc)
            finally:
                self.link = None
                self.connected.clear()
                self._queued.set(0)
                if conn.is_open:
                    await conn.disconnect()  # also on cancellation: a clean DISCONNECT
            attempt += 1
            await self._wait(attempt, reason)

    async def _deliver(self, inbox: _Inbox, link: Link, handle: Handler) -> None:
        """Hand each message to the handler in turn until the connection ends."""
        queued = self._queued
        while (message := await inbox.get()) is not None:
            queued.set(len(inbox))
            try:
                await handle(link, message)
            except Exception:  # one bad message never stops the session
                log.exception(
                    "message handling failed session=%s topic=%s", self.name, message.topic
                )

    async def _connect(self, inbox: _Inbox) -> MqttConnection:
        broker = self._broker
        return await connect(
            broker,
            client_id=self._identifier,
            username=broker.username,
            password=broker.password,
            keepalive_s=self._keepalive_s,
            on_publish=inbox.put,
            manual_ack=self._manual_ack,
            clean_session=False,
            mqtt5=self._receive_maximum is not None,
            receive_maximum=self._receive_maximum,
        )

    async def _subscribe(self, conn: MqttConnection) -> None:
        self._session_subscribed = False
        await conn.subscribe_all(self._subscriptions, session=self.name)
        self._session_subscribed = True

    async def _wait(self, attempt: int, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        delay = backoff_delay(attempt)
        log.warning(
            "mqtt connection lost session=%s error=%s retry_in_s=%.1f", self.name, reason, delay
        )
        await asyncio.sleep(delay)
