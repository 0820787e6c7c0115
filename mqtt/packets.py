"""MQTT 3.1.1 packets the lean client (mqtt/client.py) needs, encoded and decoded by hand.

Only what a device or a subscriber uses: CONNECT (will, credentials), CONNACK, PUBLISH (QoS 0
and 1), PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP and DISCONNECT. Pure functions on bytes,
no I/O.
"""

from __future__ import annotations

import struct
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

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


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


# (kind: the high nibble of the first byte, flags: the low nibble, body): a plain tuple, as
# thousands are made a second.
Packet = tuple[int, int, bytes]


def split_packets(buffer: bytearray) -> list[Packet]:
    """Remove every complete packet from the front of `buffer` and return them."""
    packets: list[Packet] = []
    pos = 0
    end = len(buffer)
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
            multiplier *= 128
            index += 1
            if not byte & 0x80:
                break
            if multiplier > 128**4:
                raise ValueError("malformed remaining length")
        if end - index < length:
            break
        first = buffer[pos]
        packets.append((first & 0xF0, first & 0x0F, bytes(buffer[index : index + length])))
        pos = index + length
    del buffer[:pos]
    return packets


def parse_publish(flags: int, body: bytes) -> tuple[str, int, bytes]:
    """(topic, packet id or 0, payload) of an incoming PUBLISH."""
    topic_end = 2 + (body[0] << 8 | body[1])
    topic = body[2:topic_end].decode()
    if flags & 0x06:  # QoS 1 or 2: a packet id follows the topic
        return topic, body[topic_end] << 8 | body[topic_end + 1], body[topic_end + 2 :]
    return topic, 0, body[topic_end:]
