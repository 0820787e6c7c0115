"""MQTT 5 packets, where a session needs them: the alarm session asks for its own receive maximum.

The same packets as mqtt/packets.py (MQTT 3.1.1) with properties. Properties the broker sends
are read in full and checked (identifier allowed in that packet, at most once unless the
specification allows more, every length inside the packet), so a PUBLISH's payload starts where
its properties end and not a byte off. Whatever cannot be taken raises `ProtocolError`, as in
3.1.1. Kept apart so the telemetry subscription's 3.1.1 hot path does not pay for MQTT 5.
"""

from __future__ import annotations

import struct

from telecare.mqtt.packets import (
    CONNECT,
    PUBLISH,
    SUBSCRIBE,
    ProtocolError,
    Will,
    _string,
    remaining_length,
)

# MQTT 5 reason codes (section 2.4) a broker may send in CONNACK, PUBACK, SUBACK or DISCONNECT;
# 0x80 and above are failures.
REASONS_5 = {
    0x00: "success",
    0x01: "granted QoS 1",
    0x02: "granted QoS 2",
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x96: "message rate too high",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA0: "maximum connect time",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}
UNSUPPORTED_PROTOCOL_VERSION = 0x84
# The reason codes each packet may carry (MQTT 5, sections 3.2.2.2, 3.4.2.1, 3.9.3, 3.14.2.1,
# and table 2-6 where the two disagree: 0x8C may end a connection too).
_CONNACK_CODES = frozenset(
    {0x00, *range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
_PUBACK_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_SUBACK_CODES = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2})
_DISCONNECT_CODES = frozenset(
    {0x00, 0x04, *range(0x80, 0x84), 0x87, 0x89, *range(0x8B, 0x91), *range(0x93, 0xA3)}
)


SESSION_EXPIRY_INTERVAL = 0x11
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
SESSION_NEVER_EXPIRES = 0xFFFFFFFF

_BYTE, _TWO_BYTES, _FOUR_BYTES, _VARIABLE, _BINARY, _STRING, _STRING_PAIR = range(7)
_PROPERTY_TYPES = {  # MQTT 5, section 2.2.2.2
    0x01: _BYTE,  # payload format indicator
    0x02: _FOUR_BYTES,  # message expiry interval
    0x03: _STRING,  # content type
    0x08: _STRING,  # response topic
    0x09: _BINARY,  # correlation data
    0x0B: _VARIABLE,  # subscription identifier
    0x11: _FOUR_BYTES,  # session expiry interval
    0x12: _STRING,  # assigned client identifier
    0x13: _TWO_BYTES,  # server keep alive
    0x15: _STRING,  # authentication method
    0x16: _BINARY,  # authentication data
    0x1A: _STRING,  # response information
    0x1C: _STRING,  # server reference
    0x1F: _STRING,  # reason string
    0x21: _TWO_BYTES,  # receive maximum
    0x22: _TWO_BYTES,  # topic alias maximum
    0x23: _TWO_BYTES,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _STRING_PAIR,  # user property
    0x27: _FOUR_BYTES,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifiers available
    0x2A: _BYTE,  # shared subscription available
}
_INTEGER_SIZES = {_BYTE: 1, _TWO_BYTES: 2, _FOUR_BYTES: 4}
_REPEATABLE = frozenset({0x0B, USER_PROPERTY})
# What a broker may send in each packet (MQTT 5, section 3): anything else is a protocol error.
_CONNACK_PROPERTIES = frozenset(
    {0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28}
    | {0x29, 0x2A}
)
_PUBLISH_PROPERTIES = frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26})
_ACK_PROPERTIES = frozenset({REASON_STRING, USER_PROPERTY})
_DISCONNECT_PROPERTIES = frozenset({0x11, 0x1C, REASON_STRING, USER_PROPERTY})
_CONNACK_LIMITS = (  # the values a CONNACK may give them
    (RECEIVE_MAXIMUM, range(1, 65536)),
    (MAXIMUM_PACKET_SIZE, range(1, 1 << 32)),
    (MAXIMUM_QOS, range(2)),
    *((ident, range(2)) for ident in (0x25, 0x28, 0x29, 0x2A)),  # "available" flags
)
# A 3.1.1 CONNACK's refusal (the answer of a broker that does not speak MQTT 5) as MQTT 5 says it
_CONNACK_311_AS_5 = {1: UNSUPPORTED_PROTOCOL_VERSION, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}

PropertyValue = int | str | bytes | tuple[str, str]
# identifier -> value; a list of values for the two that may repeat (user property,
# subscription identifier)
Properties = dict[int, PropertyValue | list[PropertyValue]]


def reason(code: int) -> str:
    return f"{code:#04x} {REASONS_5.get(code, 'unknown reason code')}"


def _properties(props: list[tuple[int, int, int]]) -> bytes:
    """Encode (identifier, size in bytes, value) integer properties, identifier order (as paho)."""
    data = b"".join(bytes([ident]) + value.to_bytes(size, "big") for ident, size, value in props)
    return remaining_length(len(data)) + data


def connect5(
    client_id: str,
    *,
    username: str | None,
    password: str | None,
    will: Will | None,
    keepalive_s: int,
    clean_start: bool = True,
    session_expiry_s: int = 0,
    receive_maximum: int | None = None,
    max_packet_size: int | None = None,
) -> bytes:
    """An MQTT 5 CONNECT. `session_expiry_s` 0 ends the session with the connection (what
    3.1.1's clean session does at the end); SESSION_NEVER_EXPIRES keeps it for ever."""
    flags = 0x02 if clean_start else 0
    props: list[tuple[int, int, int]] = []
    if session_expiry_s:
        props.append((SESSION_EXPIRY_INTERVAL, 4, session_expiry_s))
    if receive_maximum is not None:
        if not 1 <= receive_maximum <= 65535:
            raise ValueError(f"receive maximum {receive_maximum}: 1 to 65535")
        props.append((RECEIVE_MAXIMUM, 2, receive_maximum))
    if max_packet_size is not None:
        props.append((MAXIMUM_PACKET_SIZE, 4, max_packet_size))
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += b"\x00" + _string(will.topic) + _string(will.payload)  # no will properties
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    body = (
        _string("MQTT")
        + bytes([5, flags])
        + struct.pack("!H", keepalive_s)
        + _properties(props)
        + payload
    )
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def publish5(
    topic: str, payload: bytes, *, qos: int, packet_id: int = 0, retain: bool = False
) -> bytes:
    """An MQTT 5 PUBLISH without properties."""
    head = _string(topic) + (struct.pack("!H", packet_id) if qos else b"")
    body = head + b"\x00" + payload
    return bytes([PUBLISH | (qos << 1) | int(retain)]) + remaining_length(len(body)) + body


def subscribe5(packet_id: int, topic_filter: str, qos: int) -> bytes:
    """An MQTT 5 SUBSCRIBE of one filter, no properties, options: the QoS alone."""
    body = struct.pack("!H", packet_id) + b"\x00" + _string(topic_filter) + bytes([qos])
    return bytes([SUBSCRIBE]) + remaining_length(len(body)) + body


def _variable(body: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of a variable byte integer at `pos`."""
    value = 0
    for shift in (0, 7, 14, 21):
        byte = body[pos]  # IndexError past the end: the caller's ProtocolError
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ProtocolError("malformed variable byte integer: more than 4 bytes")


def parse_properties(body: bytes, pos: int, allowed: frozenset[int]) -> tuple[Properties, int]:
    """The properties that start at `pos` (their length first), and the position after them."""
    try:
        length, pos = _variable(body, pos)
        end = pos + length
        if end > len(body):
            raise ProtocolError(f"properties of {length} bytes longer than the packet")
        props: Properties = {}
        while pos < end:
            ident = body[pos]
            kind = _PROPERTY_TYPES.get(ident) if ident in allowed else None
            if kind is None:
                raise ProtocolError(f"property {ident:#04x} not allowed here")
            value, pos = _read_value(body, pos + 1, kind, end)
            if pos > end:
                raise ProtocolError(f"property {ident:#04x} runs past the properties")
            if ident in _REPEATABLE:
                repeated = props.setdefault(ident, [])
                assert isinstance(repeated, list)
                repeated.append(value)
            elif ident in props:
                raise ProtocolError(f"property {ident:#04x} more than once")
            else:
                props[ident] = value
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed properties: {exc}") from None
    return props, end


def _read_value(body: bytes, pos: int, kind: int, end: int) -> tuple[PropertyValue, int]:
    """One property's value at `pos` and the position after it (past `end`: the caller's
    ProtocolError)."""
    size = _INTEGER_SIZES.get(kind)
    if size is not None:
        return int.from_bytes(body[pos : pos + size]), pos + size
    if kind == _VARIABLE:
        return _variable(body, pos)
    if kind == _BINARY:
        size = body[pos] << 8 | body[pos + 1]
        return body[pos + 2 : pos + 2 + size], pos + 2 + size
    text, pos = _read_string(body, pos, end)
    if kind == _STRING:
        return text, pos
    second, pos = _read_string(body, pos, end)
    return (text, second), pos


def _read_string(body: bytes, pos: int, end: int) -> tuple[str, int]:
    size = body[pos] << 8 | body[pos + 1]
    if pos + 2 + size > end:
        raise ProtocolError("string runs past the properties")
    text = body[pos + 2 : pos + 2 + size].decode()
    if "\x00" in text:  # MQTT-1.5.4-2
        raise ProtocolError("string holding U+0000")
    return text, pos + 2 + size


def int_property(props: Properties, ident: int, default: int) -> int:
    value = props.get(ident, default)
    assert isinstance(value, int)  # the identifier's type, set by parse_properties
    return value


def parse_connack5(flags: int, body: bytes) -> tuple[bool, int, Properties]:
    """(session present, reason code, properties) of the CONNACK answering an MQTT 5 CONNECT.

    A broker that speaks only 3.1.1 answers with a 3.1.1 CONNACK (two bytes, return code 1):
    its refusals are given as the MQTT 5 reason code that says the same, so
    UNSUPPORTED_PROTOCOL_VERSION whichever the broker's version."""
    if flags or len(body) < 2 or body[0] & 0xFE:
        raise ProtocolError(f"malformed CONNACK: flags {flags:#x}, body {body.hex()}")
    session_present, code = bool(body[0]), body[1]
    if len(body) == 2:
        if code not in _CONNACK_311_AS_5:
            raise ProtocolError(f"3.1.1 CONNACK {body.hex()} to an MQTT 5 CONNECT")
        return False, _CONNACK_311_AS_5[code], {}
    if code not in _CONNACK_CODES:
        raise ProtocolError(f"CONNACK reason code {code:#x}")
    if code and session_present:
        raise ProtocolError("CONNACK refusing with session present")
    props, end = parse_properties(body, 2, _CONNACK_PROPERTIES)
    if end != len(body):
        raise ProtocolError("CONNACK longer than its properties")
    for ident, allowed in _CONNACK_LIMITS:
        value = int_property(props, ident, 1)
        if value not in allowed:
            raise ProtocolError(f"CONNACK property {ident:#04x} of {value}")
    return session_present, code, props


def parse_publish5(flags: int, body: bytes) -> tuple[str, int, bytes, Properties]:
    """(topic, packet id or 0, payload, properties) of an incoming MQTT 5 PUBLISH of QoS 0 or 1.

    A topic alias is refused: this client allows none (its CONNECT sets no topic alias maximum),
    so an empty topic or an alias is the broker breaking the protocol."""
    if flags & 0x04:
        qos = (flags & 0x06) >> 1
        raise ProtocolError(f"PUBLISH of QoS {qos} refused: this client takes QoS 0 and 1")
    try:
        pos = 2 + (body[0] << 8 | body[1])
        if pos > len(body):
            raise ProtocolError("PUBLISH topic longer than the packet")
        topic = body[2:pos].decode()
        packet_id = 0
        if flags & 0x02:
            packet_id = body[pos] << 8 | body[pos + 1]
            pos += 2
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed PUBLISH: {exc}") from None
    if flags & 0x02 and not packet_id:
        raise ProtocolError("QoS 1 PUBLISH with packet id 0")
    props, pos = parse_properties(body, pos, _PUBLISH_PROPERTIES)
    if TOPIC_ALIAS in props or not topic:
        raise ProtocolError("PUBLISH with a topic alias: this client allows none")
    if "\x00" in topic:  # MQTT-1.5.4-2
        raise ProtocolError("PUBLISH topic holding U+0000")
    return topic, packet_id, body[pos:], props


def parse_ack5(flags: int, body: bytes) -> tuple[int, int, Properties]:
    """(packet id, reason code, properties) of an MQTT 5 PUBACK."""
    if flags or len(body) < 2:
        raise ProtocolError(f"malformed PUBACK: flags {flags:#x}, body {body.hex()}")
    packet_id = body[0] << 8 | body[1]
    if len(body) == 2:
        return packet_id, 0, {}
    code = body[2]
    if code not in _PUBACK_CODES:
        raise ProtocolError(f"PUBACK reason code {code:#x}")
    if len(body) == 3:
        return packet_id, code, {}
    props, end = parse_properties(body, 3, _ACK_PROPERTIES)
    if end != len(body):
        raise ProtocolError("PUBACK longer than its properties")
    return packet_id, code, props


def parse_suback5(flags: int, body: bytes) -> tuple[int, bytes, Properties]:
    """(packet id, one reason code per filter, properties) of an MQTT 5 SUBACK."""
    if flags or len(body) < 4:
        raise ProtocolError(f"malformed SUBACK: flags {flags:#x}, body {body.hex()}")
    props, end = parse_properties(body, 2, _ACK_PROPERTIES)
    codes = body[end:]
    if not codes:
        raise ProtocolError("SUBACK without a reason code")
    for code in codes:
        if code not in _SUBACK_CODES:
            raise ProtocolError(f"SUBACK reason code {code:#x}")
    return body[0] << 8 | body[1], codes, props


def parse_disconnect5(flags: int, body: bytes) -> tuple[int, Properties]:
    """(reason code, properties) of the DISCONNECT an MQTT 5 broker sends before it closes."""
    if flags:
        raise ProtocolError(f"malformed DISCONNECT: flags {flags:#x}")
    if not body:
        return 0, {}
    code = body[0]
    if code not in _DISCONNECT_CODES:
        raise ProtocolError(f"DISCONNECT reason code {code:#x}")
    if len(body) == 1:
        return code, {}
    props, end = parse_properties(body, 1, _DISCONNECT_PROPERTIES)
    if end != len(body):
        raise ProtocolError("DISCONNECT longer than its properties")
    return code, props
