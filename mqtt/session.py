"""One persistent MQTT session of the ingest: reconnects with back-off, a bounded receive queue,
and (optionally) MQTT-level acknowledgements sent by the application, not on receipt.

aiomqtt's client reads the socket and queues every message whatever the consumer does; its
queue is unbounded by default, and paho PUBACKs a QoS 1 message as soon as it is read. Here:

- the receive queue is bounded (`queue_max`): when it is full, the oldest message that may be
  dropped is dropped and counted (`telecare_mqtt_dropped_total{session}`);
- with `manual_ack=True` a QoS 1 message is PUBACKed only when the application says so
  (`Link.puback`), so the broker keeps it, and redelivers it after a reconnect, until then. The
  broker sends a client at most its in-flight window of un-PUBACKed messages and queues the
  rest in the persistent session, so those are never dropped here: only QoS 0 messages are.
  With `receive_maximum` (an MQTT 5 session) the window is the smaller of it and the broker's
  own `max_inflight_messages` (docs/OPERATIONS.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from telecare.core.backoff import backoff_delay
from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress

log = logging.getLogger(__name__)

Handler = Callable[["Link", aiomqtt.Message], Awaitable[None]]


class Link:
    """One connection of the session. PUBACKs go out on it only while it is open: after a
    reconnect the broker redelivers what was not acknowledged under packet ids that may now
    belong to other messages, so an old id must never be acknowledged on the new connection."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.open = True

    def puback(self, message: aiomqtt.Message) -> None:
        if self.open and message.qos > 0:
            # paho's own call for manual_ack mode; aiomqtt does not wrap it.
            self.client._client.ack(message.mid, message.qos)  # aiomqtt's paho client


def _bounded_queue(
    limit: int, *, drop_qos1: bool, on_drop: Callable[[], None]
) -> type[asyncio.Queue[aiomqtt.Message]]:
    class BoundedQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.qsize() >= limit and (drop_qos1 or item.qos == 0):
                on_drop()
                if drop_qos1:
                    self.get_nowait()  # the oldest goes: the newest says more about now
                else:
                    return
            super().put_nowait(item)

    return BoundedQueue


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
    ) -> None:
        self._broker = broker
        self.name = name
        self._identifier = identifier
        self._subscriptions = subscriptions
        self._manual_ack = manual_ack
        self._receive_maximum = receive_maximum
        self._queued = metrics.mqtt_queued.labels(name)
        dropped = metrics.mqtt_dropped.labels(name)
        self._queue_type = _bounded_queue(queue_max, drop_qos1=not manual_ack, on_drop=dropped.inc)
        self.connected = asyncio.Event()
        self.link: Link | None = None

    async def run(self, handle: Handler) -> None:
        attempt = 0
        while True:
            client = self._broker.client(
                identifier=self._identifier,
                clean_session=False,
                queue_type=self._queue_type,
                receive_maximum=self._receive_maximum,
            )
            client._client.manual_ack_set(self._manual_ack)  # see Link.puback
            link: Link | None = None
            try:
                async with client:
                    for topic_filter, qos in self._subscriptions:
                        await client.subscribe(topic_filter, qos=qos)
                    link = self.link = Link(client)
                    self.connected.set()
                    attempt = 0
                    log.info(
                        "mqtt connected session=%s host=%s port=%d",
                        self.name,
                        self._broker.host,
                        self._broker.port,
                    )
                    async for message in client.messages:
                        self._queued.set(len(client.messages))
                        try:
                            await handle(link, message)
                        except Exception:  # one bad message never stops the session
                            log.exception(
                                "message handling failed session=%s topic=%s",
                                self.name,
                                message.topic.value,
                            )
            except aiomqtt.MqttError as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning(
                    "mqtt connection lost session=%s error=%s retry_in_s=%.1f",
                    self.name,
                    exc,
                    delay,
                )
                self._lost(link)
                await asyncio.sleep(delay)
            finally:
                self._lost(link)

    def _lost(self, link: Link | None) -> None:
        if link is not None:
            link.open = False
        self.link = None
        self.connected.clear()
