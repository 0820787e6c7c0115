"""A subscription that lasts: the lean client (mqtt/client.py), reconnecting with back-off,
each message handed synchronously to a handler as it is read from the socket.

No receive queue and no task switch per message: a handler that cannot keep up slows the
reading of the socket, and the broker holds (QoS 1, persistent session) or drops (QoS 0) what
waits, instead of this process's memory. A handler's error is logged with the topic, and the
next message is handled as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from telecare.core.backoff import backoff_delay
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, MqttError, OnMessage, connect

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
    ) -> None:
        self._broker = broker
        self.name = name
        self._identifier = identifier
        self._filters = filters
        self._handle = on_message
        self._clean_session = clean_session
        self._keepalive_s = keepalive_s
        self.connected = asyncio.Event()

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
                for topic_filter, qos in self._filters:
                    await conn.subscribe(topic_filter, qos)
                self.connected.set()
                attempt = 0
                log.info(
                    "mqtt connected session=%s host=%s port=%d",
                    self.name,
                    self._broker.host,
                    self._broker.port,
                )
                await asyncio.shield(conn.closed)
                reason = "connection lost"
            except MqttError as exc:
                reason = str(exc)
            finally:
                self.connected.clear()
                if conn.is_open:
                    await conn.disconnect()  # also on cancellation: a clean DISCONNECT
            attempt += 1
            await self._wait(attempt, reason)

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
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            self._handle(topic, payload)
        except Exception:  # one bad message never stops the session
            log.exception("message handling failed session=%s topic=%s", self.name, topic)

    async def _wait(self, attempt: int, reason: str) -> None:
        delay = backoff_delay(attempt)
        log.warning(
            "mqtt connection lost session=%s error=%s retry_in_s=%.1f", self.name, reason, delay
        )
        await asyncio.sleep(delay)
