"""A lean asyncio MQTT 3.1.1 client: one small Protocol object per connection.

aiomqtt (paho underneath) costs a thread-safe client object, several tasks and socket callbacks
per connection, and parses every packet in pure Python behind a queue and a task switch per
message. This client is an `asyncio.Protocol`: no task per connection, a timer handle for the
keepalive, futures only while a CONNECT, SUBSCRIBE or QoS 1 PUBLISH waits for its answer, and
each incoming PUBLISH handed synchronously to `on_message` (QoS 1 ones PUBACKed together, in
one write, at the end of the turn of the event loop that handled them).
The simulated fleet uses it for its ten thousand connections, the ingest for its telemetry
subscription (mqtt/subscription.py), where paho's parsing was most of the ingest's CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt import packets

OnMessage = Callable[[str, bytes], None]

_PACKETS_PER_TURN = 64  # a millisecond or two of handling between turns of the event loop


class MqttError(Exception):
    """The connection failed, was refused or was lost."""


class ConnectRefused(MqttError):
    def __init__(self, code: int) -> None:
        super().__init__(f"broker refused CONNECT: {packets.CONNACK_REASONS.get(code, code)}")
        self.code = code


class MqttConnection(asyncio.Protocol):
    """One broker connection. Create with `connect()`; end with `disconnect()` or `abort()`."""

    def __init__(self, on_message: OnMessage | None, keepalive_s: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._keepalive_s = keepalive_s
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._backlog: deque[packets.Packet] = deque()  # read, not yet handled
        self._reading_paused = False
        self._pubacks: list[bytes] = []
        self._ids = itertools.cycle(range(1, 65536))
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._connack: asyncio.Future[int] = self._loop.create_future()
        self._ping: asyncio.TimerHandle | None = None
        self._last_write = time.monotonic()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.acks_received = 0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._backlog.extend(packets.split_packets(self._buffer))
        except ValueError:
            self.abort()
            return
        self._handle_some()

    def _handle_some(self) -> None:
        """Handle at most _PACKETS_PER_TURN packets, then let the loop's other tasks run: with
        a backlog, libuv (uvloop) would otherwise read and hand over socket after socket's
        worth in one turn, and the database writers and the alarm session would starve."""
        backlog = self._backlog
        for _ in range(min(len(backlog), _PACKETS_PER_TURN)):
            self._handle(backlog.popleft())
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._pubacks:  # one write (one system call) for all the PUBACKs of this turn
            self.write(b"".join(self._pubacks))
            self._pubacks.clear()
        if backlog:
            if not self._reading_paused:
                transport.pause_reading()  # the broker holds the rest meanwhile
                self._reading_paused = True
            self._loop.call_soon(self._handle_some)
        elif self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ping is not None:
            self._ping.cancel()
        self._backlog.clear()  # not PUBACKed: the broker sends them again to a lasting session
        error = MqttError(f"connection lost: {exc}" if exc else "connection closed")
        futures: list[asyncio.Future[Any]] = [self._connack, *self._waiting.values()]
        for future in futures:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a lost connection is not an unhandled error
        self._waiting.clear()
        self._writable.set()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- what the device does ---

    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise MqttError("not connected")
        self._transport.write(data)
        self._last_write = time.monotonic()

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark."""
        await self._writable.wait()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Write a PUBLISH now; the future completes on the broker's PUBACK (at once for QoS 0)."""
        if qos == 0:
            self.write(packets.publish(topic, payload, qos=0, retain=retain))
            done: asyncio.Future[None] = self._loop.create_future()
            done.set_result(None)
            return done
        packet_id = next(self._ids)
        acked = self._expect(packet_id)
        self.write(packets.publish(topic, payload, qos=1, packet_id=packet_id, retain=retain))
        return acked

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        packet_id = next(self._ids)
        acked = self._expect(packet_id)
        self.write(packets.subscribe(packet_id, topic_filter, qos))
        await acked

    async def disconnect(self) -> None:
        """A clean DISCONNECT: the broker discards the Last Will."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(packets.DISCONNECT_PACKET)
            self._transport.close()
        await asyncio.shield(self.closed)

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Last Will."""
        if self._transport is not None:
            self._transport.abort()

    # --- internals ---

    def _expect(self, packet_id: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiting[packet_id] = future
        return future

    def _handle(self, packet: packets.Packet) -> None:
        kind, flags, body = packet
        if kind == packets.PUBLISH:
            topic, packet_id, payload = packets.parse_publish(flags, body)
            if packet_id:
                self._pubacks.append(packets.puback(packet_id))  # written after this turn
            if self._on_message is not None:
                self._on_message(topic, payload)
        elif kind in (packets.PUBACK, packets.SUBACK):
            self.acks_received += 1
            future = self._waiting.pop(body[0] << 8 | body[1], None)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == packets.CONNACK and not self._connack.done():
            self._connack.set_result(body[1])

    def _keepalive(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # closing: connection_lost() ends the timer
        idle_s = time.monotonic() - self._last_write
        if idle_s >= self._keepalive_s / 2:
            self.write(packets.PINGREQ_PACKET)
            idle_s = 0
        self._ping = self._loop.call_later(self._keepalive_s / 2 - idle_s, self._keepalive)

    async def handshake(self, connect_packet: bytes) -> None:
        self.write(connect_packet)
        code = await self._connack
        if code != 0:
            self.abort()
            raise ConnectRefused(code)
        self._ping = self._loop.call_later(self._keepalive_s / 2, self._keepalive)


async def connect(
    broker: BrokerAddress,
    *,
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    will: packets.Will | None = None,
    keepalive_s: int = 60,
    on_message: OnMessage | None = None,
    timeout_s: float = 30.0,
    clean_session: bool = True,
) -> MqttConnection:
    """Open a connection and wait for the broker's CONNACK; MqttError when it fails."""
    loop = asyncio.get_running_loop()
    protocol = MqttConnection(on_message, keepalive_s)
    packet = packets.connect(
        client_id,
        username=username,
        password=password,
        will=will,
        keepalive_s=keepalive_s,
        clean_session=clean_session,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(
                lambda: protocol, broker.host, broker.port, ssl=broker.tls_context()
            )
            await protocol.handshake(packet)
    except TimeoutError:
        protocol.abort()
        raise MqttError(f"no CONNACK within {timeout_s:g} s") from None
    except OSError as exc:
        raise MqttError(str(exc)) from exc
    return protocol
