"""A lean asyncio MQTT client (3.1.1, and 5 where asked): one small Protocol object per connection.

aiomqtt (paho underneath) costs a thread-safe client object, several tasks and socket callbacks
per connection, and parses every packet in pure Python behind a queue and a task switch per
message. This client is an `asyncio.Protocol`: no task per connection, a timer handle for the
keepalive, futures only while a CONNECT, SUBSCRIBE or QoS 1 PUBLISH waits for its answer, and
each incoming PUBLISH handed synchronously to `on_message` (QoS 1 ones PUBACKed together, in
one write, at the end of the turn of the event loop that handled them).
The simulated fleet uses it for its ten thousand connections, the ingest for its telemetry
subscription (mqtt/subscription.py), where paho's parsing was most of the ingest's CPU, and for
its alarm session (mqtt/persistent_session.py), broker control (devices/dynsec.py) likewise.

What the alarm session needs besides, off the telemetry's path (a connection that asks for none
of it handles packets exactly as before):

- `manual_ack`: a QoS 1 message is PUBACKed only when the application calls `puback()`, after
  the alarm is committed; one never acknowledged is redelivered by the broker after a
  reconnect, to a persistent session (`clean_session=False`, `session_present` saying whether
  the broker still held it). `on_publish` then receives each message with its packet id.
- `mqtt5`: an MQTT 5 CONNECT asking for `receive_maximum` (the broker is to send at most that
  many QoS 1 messages un-PUBACKed; more is counted, see `_over_receive_maximum`) and, for a
  persistent session, a session that never expires; CONNACK, SUBACK, PUBACK and DISCONNECT
  reason codes and properties read, PUBLISH properties read past. A broker that answers it
  does not speak MQTT 5 (a 3.1.1 CONNACK with return code 1, or reason code 0x84) is
  connected to again with 3.1.1: `protocol` on the connection says which one is in use.
- an in-flight window for QoS 1 PUBLISHes sent (`max_in_flight`, and an MQTT 5 broker's own
  receive maximum): beyond it, a PUBLISH waits in order until a PUBACK frees a place.

A broker that stops answering (frozen, or its host gone) must not leave a connection that
looks up: a PINGREQ that nothing answers within half a keep-alive period closes the connection
(`error` says why), so a silent broker is noticed within one keep-alive period, and the kernel's
TCP keep-alive and TCP_USER_TIMEOUT notice a vanished peer even while no PINGREQ is due.
Whatever the broker sends that MQTT or this client does not accept (QoS 2, a packet over
`max_packet_size`, a malformed packet) closes the connection with a ProtocolViolation: the
caller reconnects, nothing is acknowledged that was not understood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt import packets, packets_v5

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """An incoming PUBLISH as `on_publish` receives it; `packet_id` is 0 for QoS 0."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int
    retain: bool = False
    dup: bool = False


OnMessage = Callable[[str, bytes], None]
OnPublish = Callable[[Message], None]

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
    """The broker's CONNACK refused the connection; `code` is the 3.1.1 return code, or the
    MQTT 5 reason code when `mqtt5`."""

    def __init__(self, code: int, *, mqtt5: bool = False) -> None:
        why = packets_v5.reason(code) if mqtt5 else packets.CONNACK_REASONS.get(code, str(code))
        super().__init__(f"broker refused CONNECT: {why}")
        self.code = code
        self.mqtt5 = mqtt5


class SubscribeRefused(MqttError):
    """The broker answered a SUBSCRIBE with a failure (0x80, or an MQTT 5 reason code from 0x80
    up): nothing will arrive for it."""

    def __init__(self, topic_filter: str, code: int = packets.SUBACK_FAILURE) -> None:
        why = f"SUBACK {code:#x}" + (f": {packets_v5.REASONS_5[code]}" if code != 0x80 else "")
        super().__init__(f"broker refused SUBSCRIBE to {topic_filter!r} ({why})")
        self.topic_filter = topic_filter
        self.code = code


class PublishRefused(MqttError):
    """An MQTT 5 broker answered a QoS 1 PUBLISH with a failure reason code: not delivered."""

    def __init__(self, code: int) -> None:
        super().__init__(f"broker refused PUBLISH: PUBACK {packets_v5.reason(code)}")
        self.code = code


class BrokerDisconnected(MqttError):
    """An MQTT 5 broker sent DISCONNECT (session taken over, shutting down, ...) and closes."""

    def __init__(self, code: int, why: str | None) -> None:
        extra = f" ({why})" if why else ""
        super().__init__(f"broker sent DISCONNECT: {packets_v5.reason(code)}{extra}")
        self.code = code


class ProtocolViolation(MqttError):
    """The broker sent what MQTT or this client does not accept; the connection is closed."""


class MqttConnection(asyncio.Protocol):
    """One broker connection. Create with `connect()`; end with `disconnect()` or `abort()`."""

    def __init__(
        self,
        on_message: OnMessage | None,
        keepalive_s: int,
        max_packet_size: int = packets.DEFAULT_MAX_PACKET_SIZE,
        *,
        on_publish: OnPublish | None = None,
        manual_ack: bool = False,
        mqtt5: bool = False,
        receive_maximum: int | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._on_publish = on_publish
        self._manual_ack = manual_ack
        self.protocol = 5 if mqtt5 else 4
        # the broker may send at most this many QoS 1 PUBLISHes un-PUBACKed (MQTT 5 only)
        self._receive_maximum = receive_maximum if mqtt5 else None
        self._unacked: set[int] = set()  # manual_ack: ids received, not yet PUBACKed
        # Sent QoS 1 PUBLISHes in flight at most (None: as many as there are packet ids), and
        # those waiting for a place: (topic, payload, retain, future).
        self._max_in_flight = max_in_flight
        self._send_window = max_in_flight
        self._waiting: deque[tuple[str, bytes, bool, asyncio.Future[None]]] = deque()
        self._broker_max_packet_size: int | None = None  # MQTT 5 CONNACK
        self._broker_max_qos = 1
        self._encode_publish = packets_v5.publish5 if mqtt5 else packets.publish
        # The 3.1.1 subscriber that PUBACKs on receipt (the telemetry) keeps its own lean path.
        plain = not (mqtt5 or manual_ack or on_publish)
        self._dispatch: Callable[[packets.Packet], None] = (
            self._handle if plain else self._handle_any
        )
        self.connack_properties: packets_v5.Properties = {}
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
        self.receive_maximum_exceeded = 0  # PUBLISHes received over it (see _over_receive_maximum)

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
        dispatch = self._dispatch
        try:
            for _ in range(min(len(backlog), _PACKETS_PER_TURN)):
                dispatch(backlog.popleft())
        except packets.ProtocolError as exc:
            self._fail(ProtocolViolation(str(exc)))
            return
        except MqttError as exc:  # the broker's DISCONNECT
            self._fail(exc)
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
        self._unacked.clear()
        if self._error is None and not self._closed_by_us:
            self._error = MqttError(
                f"connection lost: {exc}" if exc else "connection closed by the broker"
            )
        error = self._error or MqttError("connection closed")
        futures: list[asyncio.Future[Any]] = [self._connack, *self._in_flight.values()]
        futures += [waiting[3] for waiting in self._waiting]
        self._waiting.clear()
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

    @property
    def publishes_in_flight(self) -> int:
        """QoS 1 PUBLISHes written and not yet PUBACKed (those waiting for a place left out)."""
        return len(self._in_flight) - len(self._subscribing)

    @property
    def publishes_waiting(self) -> int:
        """QoS 1 PUBLISHes waiting for a place in the in-flight window, not yet written."""
        return len(self._waiting)

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
        """Write a PUBLISH now; the future completes on the broker's PUBACK (at once for QoS 0).

        With an in-flight window that is full, a QoS 1 PUBLISH is written once a PUBACK frees a
        place (in the order they were asked for); its future fails if the connection ends first.
        PublishRefused when an MQTT 5 broker refuses it."""
        if qos == 0:
            self._check_size(topic, payload)
            self.write(self._encode_publish(topic, payload, qos=0, retain=retain))
            done: asyncio.Future[None] = self._loop.create_future()
            done.set_result(None)
            return done
        if qos != 1:
            raise ValueError(f"QoS {qos}: this client publishes at QoS 0 or 1")
        if self._broker_max_qos < 1:
            raise MqttError("the broker takes PUBLISHes of QoS 0 only")
        self._check_size(topic, payload)
        window = self._send_window
        if window is not None and (self._waiting or self.publishes_in_flight >= window):
            if self._transport is None or self._transport.is_closing():
                raise MqttError("not connected")
            future: asyncio.Future[None] = self._loop.create_future()
            self._waiting.append((topic, payload, retain, future))
            return future
        packet_id = self._packet_id()
        self.write(self._encode_publish(topic, payload, qos=1, packet_id=packet_id, retain=retain))
        return self._expect(packet_id)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """Subscribe and return the QoS the broker granted; SubscribeRefused when it refuses."""
        if qos not in (0, 1):
            raise ValueError(f"QoS {qos}: this client subscribes at QoS 0 or 1")
        packet_id = self._packet_id()
        encode = packets_v5.subscribe5 if self.protocol == 5 else packets.subscribe
        self.write(encode(packet_id, topic_filter, qos))
        acked = self._expect(packet_id)
        self._subscribing.add(packet_id)
        code: int = await acked
        if code >= packets.SUBACK_FAILURE:
            raise SubscribeRefused(topic_filter, code)
        return code

    async def subscribe_all(self, filters: Sequence[tuple[str, int]], *, session: str) -> None:
        """Subscribe to each (filter, QoS) in turn; a QoS granted lower than asked is logged, a
        refusal raises SubscribeRefused."""
        for topic_filter, qos in filters:
            granted = await self.subscribe(topic_filter, qos)
            if granted < qos:
                log.warning(
                    "mqtt subscription downgraded session=%s filter=%s qos=%d granted=%d",
                    session,
                    topic_filter,
                    qos,
                    granted,
                )

    def puback(self, packet_id: int) -> bool:
        """With `manual_ack`: acknowledge a QoS 1 message this connection delivered (written at
        the end of this turn of the event loop, with the others). False when this connection
        has nothing of that id to acknowledge: already done, QoS 0, or the connection ended
        (the broker then redelivers the message on the next one)."""
        if packet_id not in self._unacked:
            return False
        self._unacked.discard(packet_id)
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if not self._pubacks:
            self._loop.call_soon(self._write_pubacks)
        self._pubacks.append(packets.puback(packet_id))
        return True

    async def disconnect(self) -> None:
        """A clean DISCONNECT: the broker discards the Last Will. PUBACKs the application gave
        in this turn of the event loop go out first."""
        self._closed_by_us = True
        if self._transport is not None and not self._transport.is_closing():
            self._write_pubacks()
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

    def _write_pubacks(self) -> None:
        transport = self._transport
        if self._pubacks and transport is not None and not transport.is_closing():
            self.write(b"".join(self._pubacks))
        self._pubacks.clear()

    def _check_size(self, topic: str, payload: bytes) -> None:
        limit = self._broker_max_packet_size
        if limit is not None:  # the PUBLISH's size at most (packet id and properties included)
            size = 2 + len(topic.encode()) + 2 + 1 + len(payload)
            size += 1 + len(packets.remaining_length(size))
            if size > limit:
                raise MqttError(f"PUBLISH of {size} bytes over the broker's maximum of {limit}")

    def _handle(self, packet: packets.Packet) -> None:
        """A packet of a 3.1.1 connection that PUBACKs on receipt: the telemetry's hot path."""
        kind, flags, body = packet
        if kind == packets.PUBLISH:
            topic, packet_id, payload = packets.parse_publish(flags, body)
            if packet_id:
                self._pubacks.append(packets.puback(packet_id))  # written after this turn
            if self._on_message is not None:
                self._on_message(topic, payload)
        elif kind == packets.PUBACK:
            self._acked(packets.parse_ack(flags, body), 0)
        else:
            self._handle_control(kind, flags, body)

    def _handle_any(self, packet: packets.Packet) -> None:
        """A packet of an MQTT 5 connection, or of one whose application acknowledges."""
        kind, flags, body = packet
        if kind == packets.PUBLISH:
            self._received(flags, body)
        elif kind == packets.PUBACK:
            if self.protocol == 5:
                packet_id, code, _ = packets_v5.parse_ack5(flags, body)
                self._acked(packet_id, code)
            else:
                self._acked(packets.parse_ack(flags, body), 0)
        else:
            self._handle_control(kind, flags, body)

    def _received(self, flags: int, body: bytes) -> None:
        if self.protocol == 5:
            topic, packet_id, payload, _ = packets_v5.parse_publish5(flags, body)
        else:
            topic, packet_id, payload = packets.parse_publish(flags, body)
        if not packet_id:
            pass
        elif not self._manual_ack:
            self._pubacks.append(packets.puback(packet_id))  # written after this turn
        else:
            self._unacked.add(packet_id)
            limit = self._receive_maximum
            if limit is not None and len(self._unacked) > limit:
                self._over_receive_maximum(limit)
        if self._on_publish is not None:
            qos, retain, dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
            self._on_publish(Message(topic, payload, qos, packet_id, retain, dup))
        elif self._on_message is not None:
            self._on_message(topic, payload)

    def _over_receive_maximum(self, limit: int) -> None:
        """The broker sent more un-PUBACKed messages than asked. MQTT 5 would have the client
        disconnect (0x93); Mosquitto 2.0.11 does it after PUBACKs, and a connection dropped on
        each would take no alarm at all. So it is counted and logged, and the messages taken:
        the session's queue and the application's own limits bound what waits."""
        if not self.receive_maximum_exceeded:
            log.warning(
                "mqtt broker exceeds the receive maximum unacknowledged=%d receive_maximum=%d",
                len(self._unacked),
                limit,
            )
        self.receive_maximum_exceeded += 1

    def _acked(self, packet_id: int, code: int) -> None:
        """A PUBACK: its PUBLISH's future completes (fails on a refusal), and a PUBLISH waiting
        for a place in the window takes it."""
        self.acks_received += 1
        if packet_id in self._subscribing:
            raise packets.ProtocolError(f"PUBACK for SUBSCRIBE {packet_id}")
        future = self._in_flight.pop(packet_id, None)
        if future is not None and not future.done():
            if code >= packets.SUBACK_FAILURE:  # 0x80 and up: a failure, for PUBACK too
                future.set_exception(PublishRefused(code))
            else:
                future.set_result(None)
        if self._waiting:
            self._send_waiting()

    def _send_waiting(self) -> None:
        window = self._send_window or packets.MAX_PACKET_ID
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        while self._waiting and self.publishes_in_flight < window:
            topic, payload, retain, future = self._waiting.popleft()
            if future.done():  # cancelled by whoever waited for it
                continue
            packet_id = self._packet_id()
            self.write(
                self._encode_publish(topic, payload, qos=1, packet_id=packet_id, retain=retain)
            )
            self._in_flight[packet_id] = future

    def _handle_control(self, kind: int, flags: int, body: bytes) -> None:
        if kind == packets.SUBACK:
            self.acks_received += 1
            if self.protocol == 5:
                packet_id, codes, _ = packets_v5.parse_suback5(flags, body)
            else:
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
            self._connacked(flags, body)
        elif kind == packets.DISCONNECT and self.protocol == 5:
            code, props = packets_v5.parse_disconnect5(flags, body)
            why = props.get(packets_v5.REASON_STRING)
            raise BrokerDisconnected(code, why if isinstance(why, str) else None)
        else:
            raise packets.ProtocolError(f"unexpected packet type {kind >> 4} from the broker")

    def _connacked(self, flags: int, body: bytes) -> None:
        if self._connack.done():
            raise packets.ProtocolError("a second CONNACK")
        if self.protocol == 5:
            session_present, code, self.connack_properties = packets_v5.parse_connack5(flags, body)
            self._connack.set_result((session_present, code))
        else:
            self._connack.set_result(packets.parse_connack(flags, body))

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
            raise ConnectRefused(code, mqtt5=self.protocol == 5)
        self.session_present = session_present
        if self.protocol == 5:
            self._apply_connack_properties()
        if self._keepalive_s > 0:
            self._check = self._loop.call_later(
                self._keepalive_s / _CHECKS_PER_KEEPALIVE, self._check_alive
            )

    def _apply_connack_properties(self) -> None:
        """What an MQTT 5 broker says of itself: how many QoS 1 PUBLISHes it takes un-PUBACKed,
        the largest packet and highest QoS it takes, and the keep-alive it wants instead."""
        props = self.connack_properties
        broker_window = packets_v5.int_property(props, packets_v5.RECEIVE_MAXIMUM, 65535)
        self._send_window = min(self._max_in_flight or broker_window, broker_window)
        if packets_v5.MAXIMUM_PACKET_SIZE in props:
            self._broker_max_packet_size = packets_v5.int_property(
                props, packets_v5.MAXIMUM_PACKET_SIZE, 0
            )
        self._broker_max_qos = packets_v5.int_property(props, packets_v5.MAXIMUM_QOS, 1)
        keepalive_s = packets_v5.int_property(
            props, packets_v5.SERVER_KEEP_ALIVE, self._keepalive_s
        )
        if keepalive_s != self._keepalive_s:
            self._keepalive_s = keepalive_s
            if keepalive_s > 0 and self._transport is not None:
                _detect_dead_peer(self._transport.get_extra_info("socket"), keepalive_s)


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
    on_publish: OnPublish | None = None,
    manual_ack: bool = False,
    mqtt5: bool = False,
    receive_maximum: int | None = None,
    session_expiry_s: int | None = None,
    max_in_flight: int | None = None,
) -> MqttConnection:
    """Open a connection and wait for the broker's CONNACK; MqttError when it fails.

    With `clean_session=False`, `session_present` on the connection says whether the broker
    still held the session (its subscriptions and the QoS 1 messages kept meanwhile).
    With `mqtt5`, an MQTT 5 CONNECT (`receive_maximum`; a persistent session expires after
    `session_expiry_s`, by default never), and 3.1.1 again when the broker does not speak 5:
    `protocol` on the connection says which one it speaks."""
    common: dict[str, Any] = {
        "client_id": client_id,
        "username": username,
        "password": password,
        "will": will,
        "keepalive_s": keepalive_s,
    }
    options: dict[str, Any] = {
        "on_publish": on_publish,
        "manual_ack": manual_ack,
        "receive_maximum": receive_maximum,
        "max_in_flight": max_in_flight,
    }
    if mqtt5:
        if session_expiry_s is None:
            session_expiry_s = 0 if clean_session else packets_v5.SESSION_NEVER_EXPIRES
        packet = packets_v5.connect5(
            **common,
            clean_start=clean_session,
            session_expiry_s=session_expiry_s,
            receive_maximum=receive_maximum,
            max_packet_size=max_packet_size,
        )
        protocol = MqttConnection(on_message, keepalive_s, max_packet_size, mqtt5=True, **options)
        try:
            await _open(broker, protocol, packet, timeout_s)
            return protocol
        except ConnectRefused as exc:
            if exc.code != packets_v5.UNSUPPORTED_PROTOCOL_VERSION:
                raise
            log.warning(
                "mqtt broker does not speak MQTT 5, connecting with 3.1.1 client_id=%s"
                " (no receive maximum: the broker's own in-flight limit applies)",
                client_id,
            )
    packet = packets.connect(**common, clean_session=clean_session)
    protocol = MqttConnection(on_message, keepalive_s, max_packet_size, **options)
    await _open(broker, protocol, packet, timeout_s)
    return protocol


async def _open(
    broker: BrokerAddress, protocol: MqttConnection, packet: bytes, timeout_s: float
) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(
                lambda: protocol, broker.host, broker.port, ssl=broker.tls_context()
            )
            await protocol.handshake(packet)
    except BaseException as exc:
        # Refused, timed out, broken or cancelled half-way: the socket is closed here, not
        # left for the garbage collector.
        protocol.abort()
        if isinstance(exc, TimeoutError):
            raise MqttError(f"no CONNACK within {timeout_s:g} s") from None
        if isinstance(exc, OSError):
            raise MqttError(str(exc)) from exc
        raise
