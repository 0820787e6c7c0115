"""MQTT 3.1.1 packets the lean client (mqtt/client.py) needs, encoded and decoded by hand.

Only what a device or a subscriber uses: CONNECT (will, credentials), CONNACK, PUBLISH (QoS 0
and 1), PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP and DISCONNECT. Pure functions on bytes,
no I/O. Whatever the broker sends that these functions cannot take raises `ProtocolError`, and
nothing else: the client closes the connection on it, so a broken or hostile peer costs a
reconnect, never an exception out of the event loop or a buffer that grows without bound.

MQTT 5's packets are in mqtt/packets_v5.py.
"""

from __future__ import annotations

import struct
from collections.abc import Container
from dataclasses import dataclass

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ_PACKET = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT_PACKET = b"\xe0\x00"

DISCONNECT = 0xE0

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
SUBACK_FAILURE = 0x80

MAX_PACKET_ID = 65535
# A device's payload is at most 4096 bytes (docs/PROTOCOL.md); four times that plus a topic
# still lets an oversized message through to the ingest's quarantine (`oversized`), while a
# peer announcing megabytes is refused before a byte of it is buffered.
DEFAULT_MAX_PACKET_SIZE = 4 * 4096 + 1024


class ProtocolError(ValueError):
    """The bytes are not an MQTT packet this client accepts."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def remaining_length(length: int) -> bytes:
    """The variable-length "remaining length" of the fixed header."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def connect(
    client_id: str,
    *,
    username: str | None,
    password: str | None,
    will: Will | None,
    keepalive_s: int,
    clean_session: bool = True,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s) + payload
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def publish(
    topic: str, payload: bytes, *, qos: int, packet_id: int = 0, retain: bool = False
) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([PUBLISH | (qos << 1) | int(retain)]) + remaining_length(len(body)) + body


def puback(packet_id: int) -> bytes:
    return struct.pack("!BBH", PUBACK, 2, packet_id)


def subscribe(packet_id: int, topic_filter: str, qos: int) -> bytes:
    body = struct.pack("!H", packet_id) + _string(topic_filter) + bytes([qos])
    return bytes([SUBSCRIBE]) + remaining_length(len(body)) + body


def next_packet_id(last: int, in_flight: Container[int], in_flight_count: int) -> int:
    """The packet id after `last` (1..65535, wrapping) that no packet in flight holds, or 0 when
    all of them are in flight: the broker matches an acknowledgement to its packet by the id
    alone, so an id reused while in flight would complete the wrong packet."""
    if in_flight_count >= MAX_PACKET_ID:
        return 0
    packet_id = last % MAX_PACKET_ID + 1
    while packet_id in in_flight:
        packet_id = packet_id % MAX_PACKET_ID + 1
    return packet_id


# (kind: the high nibble of the first byte, flags: the low nibble, body): a plain tuple, as
# thousands are made a second.
Packet = tuple[int, int, bytes]


def split_packets(buffer: bytearray, max_size: int = DEFAULT_MAX_PACKET_SIZE) -> list[Packet]:
    """Remove every complete packet from the front of `buffer` and return them.

    What stays in `buffer` is the start of one packet of at most `max_size` bytes (fixed header
    included): a longer one, or a remaining length of more than four bytes, raises
    ProtocolError as soon as its header is read, before its body is waited for."""
    packets: list[Packet] = []
    pos = 0
    end = len(buffer)
    limit = max_size - 5  # no header is longer: only a packet over this needs the exact sum
    while end - pos >= 2:
        length = 0
        multiplier = 1
        index = pos + 1
        while True:
            if index >= end:
                del buffer[:pos]
                return packets
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            if multiplier == 2097152:  # 128**3: the fourth byte may not continue
                raise ProtocolError("malformed remaining length: more than 4 bytes")
            multiplier *= 128
        if length > limit and index - pos + length > max_size:
            raise ProtocolError(
                f"packet of {index - pos + length} bytes over the maximum of {max_size}"
            )
        if end - index < length:
            break
        first = buffer[pos]
        packets.append((first & 0xF0, first & 0x0F, bytes(buffer[index : index + length])))
        pos = index + length
    del buffer[:pos]
    return packets


def parse_publish(flags: int, body: bytes) -> tuple[str, int, bytes]:
    """(topic, packet id or 0, payload) of an incoming PUBLISH of QoS 0 or 1.

    QoS 2 is refused: this client never subscribes at QoS 2, so a broker that sends one breaks
    the protocol, and acknowledging it with a PUBACK (which QoS 2 does not use) would leave it
    unacknowledged and redelivered for ever."""
    try:
        topic_end = 2 + (body[0] << 8 | body[1])
        topic = body[2:topic_end].decode()
        if flags & 0x06:  # QoS 1 or 2: a packet id follows the topic
            if flags & 0x04:
                qos = (flags & 0x06) >> 1
                raise ProtocolError(f"PUBLISH of QoS {qos} refused: this client takes QoS 0 and 1")
            # (IndexError when the topic's length points past the packet)
            return topic, body[topic_end] << 8 | body[topic_end + 1], body[topic_end + 2 :]
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed PUBLISH: {exc}") from None
    if topic_end > len(body):
        raise ProtocolError("PUBLISH topic longer than the packet")
    return topic, 0, body[topic_end:]


def parse_connack(flags: int, body: bytes) -> tuple[bool, int]:
    """(session present, return code) of a CONNACK."""
    if flags or len(body) != 2 or body[0] & 0xFE:
        raise ProtocolError(f"malformed CONNACK: flags {flags:#x}, body {body.hex()}")
    return bool(body[0]), body[1]


def parse_ack(flags: int, body: bytes) -> int:
    """The packet id of a PUBACK."""
    if flags or len(body) != 2:
        raise ProtocolError(f"malformed PUBACK: flags {flags:#x}, body {body.hex()}")
    return body[0] << 8 | body[1]


def parse_suback(flags: int, body: bytes) -> tuple[int, bytes]:
    """(packet id, one return code per filter: the granted QoS or 0x80 for a refusal)."""
    if flags or len(body) < 3:
        raise ProtocolError(f"malformed SUBACK: flags {flags:#x}, body {body.hex()}")
    codes = body[2:]
    for code in codes:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise ProtocolError(f"SUBACK return code {code:#x}")
    return body[0] << 8 | body[1], codes
