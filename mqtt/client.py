"""A lean asyncio MQTT 3.1.1 client: one small Protocol object per connection.

aiomqtt (paho underneath) costs a thread-safe client object, several tasks and socket callbacks
per connection, and parses every packet in pure Python behind a queue and a task switch per
message. This client is an `asyncio.Protocol`: no task per connection, a timer handle for the
keepalive, futures only while a CONNECT, SUBSCRIBE or QoS 1 PUBLISH waits for its answer, and
each incoming PUBLISH handed synchronously to `on_message` (QoS 1 ones PUBACKed together, in
one write, at the end of the turn of the event loop that handled them).
The simulated fleet uses it for its ten thousand connections, the ingest for its telemetry
subscription (mqtt/subscription.py), where paho's parsing was most of the ingest's CPU.

A broker that stops answering (frozen, or its host gone) must not leave a connection that
looks up: a PINGREQ that nothing answers within half a keep-alive period closes the connection
(`error` says why), so a silent broker is noticed within one keep-alive period, and the kernel's
TCP keep-alive and TCP_USER_TIMEOUT notice a vanished peer even while no PINGREQ is due.
Whatever the broker sends that MQTT 3.1.1 or this client does not accept (QoS 2, a packet over
`max_packet_size`, a malformed packet) closes the connection with a ProtocolViolation: the
caller reconnects, nothing is acknowledged that was not understood.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt import packets

OnMessage = Callable[[str, bytes], None]

_PACKETS_PER_TURN = 64  # a millisecond or two of handling between turns of the event loop
# The liveness check runs four times per keep-alive period; a PINGREQ unanswered, with nothing
# else heard from the broker, over two checks (half a period) ends the connection. Counting
# checks rather than seconds: between two checks the loop has always read its sockets, so a
# process that was itself stalled never blames the broker for it.
_CHECKS_PER_KEEPALIVE = 4
_SILENT_CHECKS = 2


class MqttError(Exception):
    """The connection failed, was refused or was lost."""


class ConnectRefused(MqttError):
    def __init__(self, code: int) -> None:
        super().__init__(f"broker refused CONNECT: {packets.CONNACK_REASONS.get(code, code)}")
        self.code = code


class SubscribeRefused(MqttError):
    """The broker answered a SUBSCRIBE with return code 0x80: nothing will arrive for it."""

    def __init__(self, topic_filter: str) -> None:
        super().__init__(f"broker refused SUBSCRIBE to {topic_filter!r} (SUBACK 0x80)")
        self.topic_filter = topic_filter


class ProtocolViolation(MqttError):
    """The broker sent what MQTT 3.1.1 or this client does not accept; the connection is closed."""


class MqttConnection(asyncio.Protocol):
    """One broker connection. Create with `connect()`; end with `disconnect()` or `abort()`."""

    def __init__(
        self,
        on_message: OnMessage | None,
        keepalive_s: int,
        max_packet_size: int = packets.DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._keepalive_s = keepalive_s
        self._max_packet_size = max_packet_size
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._backlog: deque[packets.Packet] = deque()  # read, not yet handled
        self._reading_paused = False
        self._pubacks: list[bytes] = []
        self._last_id = 0
        # packet id -> its PUBACK's (None) or SUBACK's (return code) future, while in flight
        self._in_flight: dict[int, asyncio.Future[Any]] = {}
        self._subscribing: set[int] = set()  # the ids of _in_flight that are SUBSCRIBEs
        self._connack: asyncio.Future[tuple[bool, int]] = self._loop.create_future()
        self._check: asyncio.TimerHandle | None = None
        self._heard = False  # something was read since the last liveness check
        self._ping_waiting = False
        self._silent_checks = 0
        self._last_write = time.monotonic()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed_by_us = False
        self._error: MqttError | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.session_present = False
        self.acks_received = 0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it
        self._transport = cast(asyncio.Transport, transport)
        if self._keepalive_s > 0:
            _detect_dead_peer(transport.get_extra_info("socket"), self._keepalive_s)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        self._buffer += data
        try:
            self._backlog.extend(packets.split_packets(self._buffer, self._max_packet_size))
        except packets.ProtocolError as exc:
            self._fail(ProtocolViolation(str(exc)))
            return
        self._handle_some()

    def _handle_some(self) -> None:
        """Handle at most _PACKETS_PER_TURN packets, then let the loop's other tasks run: with
        a backlog, libuv (uvloop) would otherwise read and hand over socket after socket's
        worth in one turn, and the database writers and the alarm session would starve."""
        backlog = self._backlog
        try:
            for _ in range(min(len(backlog), _PACKETS_PER_TURN)):
                self._handle(backlog.popleft())
        except packets.ProtocolError as exc:
            self._fail(ProtocolViolation(str(exc)))
            return
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
        if self._check is not None:
            self._check.cancel()
        self._backlog.clear()  # not PUBACKed: the broker sends them again to a lasting session
        self._pubacks.clear()
        if self._error is None and not self._closed_by_us:
            self._error = MqttError(
                f"connection lost: {exc}" if exc else "connection closed by the broker"
            )
        error = self._error or MqttError("connection closed")
        futures: list[asyncio.Future[Any]] = [self._connack, *self._in_flight.values()]
        for future in futures:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a lost connection is not an unhandled error
        self._in_flight.clear()
        self._subscribing.clear()
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

    @property
    def error(self) -> MqttError | None:
        """Why the connection ended; None while it is open and after `disconnect()`/`abort()`."""
        return self._error

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
        if qos != 1:
            raise ValueError(f"QoS {qos}: this client publishes at QoS 0 or 1")
        packet_id = self._packet_id()
        self.write(packets.publish(topic, payload, qos=1, packet_id=packet_id, retain=retain))
        return self._expect(packet_id)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """Subscribe and return the QoS the broker granted; SubscribeRefused when it refuses."""
        if qos not in (0, 1):
            raise ValueError(f"QoS {qos}: this client subscribes at QoS 0 or 1")
        packet_id = self._packet_id()
        self.write(packets.subscribe(packet_id, topic_filter, qos))
        acked = self._expect(packet_id)
        self._subscribing.add(packet_id)
        code: int = await acked
        if code == packets.SUBACK_FAILURE:
            raise SubscribeRefused(topic_filter)
        return code

    async def disconnect(self) -> None:
        """A clean DISCONNECT: the broker discards the Last Will."""
        self._closed_by_us = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(packets.DISCONNECT_PACKET)
            self._transport.close()
        await asyncio.shield(self.closed)

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Last Will."""
        self._closed_by_us = True
        if self._transport is not None:
            self._transport.abort()

    # --- internals ---

    def _packet_id(self) -> int:
        in_flight = self._in_flight
        packet_id = packets.next_packet_id(self._last_id, in_flight, len(in_flight))
        if not packet_id:
            raise MqttError(f"all {packets.MAX_PACKET_ID} packet ids wait for an acknowledgement")
        self._last_id = packet_id
        return packet_id

    def _expect(self, packet_id: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._in_flight[packet_id] = future
        return future

    def _handle(self, packet: packets.Packet) -> None:
        kind, flags, body = packet
        if kind == packets.PUBLISH:
            topic, packet_id, payload = packets.parse_publish(flags, body)
            if packet_id:
                self._pubacks.append(packets.puback(packet_id))  # written after this turn
            if self._on_message is not None:
                self._on_message(topic, payload)
        elif kind == packets.PUBACK:
            self.acks_received += 1
            packet_id = packets.parse_ack(flags, body)
            if packet_id in self._subscribing:
                raise packets.ProtocolError(f"PUBACK for SUBSCRIBE {packet_id}")
            future = self._in_flight.pop(packet_id, None)
            if future is not None and not future.done():
                future.set_result(None)
        else:
            self._handle_control(kind, flags, body)

    def _handle_control(self, kind: int, flags: int, body: bytes) -> None:
        if kind == packets.SUBACK:
            self.acks_received += 1
            packet_id, codes = packets.parse_suback(flags, body)
            if packet_id in self._subscribing:
                self._subscribing.discard(packet_id)
                future = self._in_flight.pop(packet_id)
                if not future.done():
                    future.set_result(codes[0])  # one filter per SUBSCRIBE
            elif packet_id in self._in_flight:
                raise packets.ProtocolError(f"SUBACK for PUBLISH {packet_id}")
            # else: nothing waits for it (a SUBSCRIBE the caller wrote itself), as for PUBACK
        elif kind == packets.PINGRESP:
            if flags or body:
                raise packets.ProtocolError("malformed PINGRESP")
            self._ping_waiting = False
        elif kind == packets.CONNACK:
            if self._connack.done():
                raise packets.ProtocolError("a second CONNACK")
            self._connack.set_result(packets.parse_connack(flags, body))
        else:
            raise packets.ProtocolError(f"unexpected packet type {kind >> 4} from the broker")

    def _fail(self, error: MqttError) -> None:
        """Close the connection at once because of `error`, which `error` then reports."""
        if self._error is None:
            self._error = error
        self._backlog.clear()
        if self._transport is not None:
            self._transport.abort()

    def _check_alive(self) -> None:
        """Every quarter keep-alive: a PINGREQ when the broker has been silent (to find out
        whether it still answers) or nothing was written for half a period (MQTT's own
        keep-alive); the connection closed when a PINGREQ stays unanswered and nothing else
        arrives for two checks. A backlog read and not yet handled counts as heard: it is
        this process that is behind, not the broker."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # closing: connection_lost() ends the checks
        heard = self._heard or self._reading_paused
        self._heard = False
        period_s = self._keepalive_s / _CHECKS_PER_KEEPALIVE
        if self._ping_waiting:
            if heard:
                self._silent_checks = 0
            else:
                self._silent_checks += 1
                if self._silent_checks >= _SILENT_CHECKS:
                    self._fail(
                        MqttError(
                            f"no PINGRESP within {period_s * _SILENT_CHECKS:g} s and nothing"
                            " else heard: the broker stopped answering"
                        )
                    )
                    return
        elif not heard or time.monotonic() - self._last_write >= self._keepalive_s / 2:
            self.write(packets.PINGREQ_PACKET)
            self._ping_waiting = True
            self._silent_checks = 0
        self._check = self._loop.call_later(period_s, self._check_alive)

    async def handshake(self, connect_packet: bytes) -> None:
        self.write(connect_packet)
        session_present, code = await self._connack
        if code != 0:
            self.abort()
            raise ConnectRefused(code)
        self.session_present = session_present
        if self._keepalive_s > 0:
            self._check = self._loop.call_later(
                self._keepalive_s / _CHECKS_PER_KEEPALIVE, self._check_alive
            )


def _detect_dead_peer(sock: Any, keepalive_s: int) -> None:
    """Let the kernel notice a vanished peer (host down, network cut) within 1.5 keep-alive
    periods too: probes on an idle connection, and a limit on how long written data may stay
    unacknowledged. A broker that is alive but frozen is still acknowledged by its kernel; the
    PINGREQ check is what notices that one."""
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, keepalive_s // 2))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, keepalive_s // 4))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, keepalive_s * 1500)


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
    max_packet_size: int = packets.DEFAULT_MAX_PACKET_SIZE,
) -> MqttConnection:
    """Open a connection and wait for the broker's CONNACK; MqttError when it fails.

    With `clean_session=False`, `session_present` on the connection says whether the broker
    still held the session (its subscriptions and the QoS 1 messages kept meanwhile)."""
    loop = asyncio.get_running_loop()
    protocol = MqttConnection(on_message, keepalive_s, max_packet_size)
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
