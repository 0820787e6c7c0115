"""The lean client's MQTT 5 packets (telecare.mqtt.packets, the `*5` functions) on their own.

The reference codec is paho-mqtt 2.x, which speaks MQTT 5 with its properties: the CONNECT,
PUBLISH and SUBSCRIBE we build are compared byte for byte with what paho's client builds for
the same packet (its `_send_*` methods, the outgoing queue captured as in
test_mqtt_packets.py), and what we read from the CONNACK, PUBLISH, PUBACK, SUBACK and
DISCONNECT a broker sends, properties included, with what paho's decoders read, over
hypothesis-made reason codes and properties. Then: a stream of MQTT 5 packets cut at every
byte gives the same packets; random or damaged bodies and property blocks raise nothing but
ProtocolError; and the answer of a broker that does not speak MQTT 5 (a 3.1.1 CONNACK) reads as
"unsupported protocol version", which the client falls back on.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet as paho_packet
from paho.mqtt.client import Client, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from telecare.mqtt import packets, packets_v5
from telecare.mqtt.packets import ProtocolError

EXAMPLES = int(os.environ.get("TELECARE_FUZZ_EXAMPLES", "300"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
V5 = MQTTProtocolVersion.MQTTv5

TOPIC_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="+#\x00"), min_size=1, max_size=80
)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
PAYLOADS = st.binary(max_size=600)
PACKET_IDS = st.integers(1, 65535)
QOS = st.integers(0, 1)
FOUR_BYTES = st.integers(0, 0xFFFFFFFF)

# Reason codes a broker may send, per packet (MQTT 5, section 3; CONNACK's 0x99, "payload
# format invalid" for a will, is one paho does not know, so not compared here)
CONNACK_FAILURES = [0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C]
CONNACK_FAILURES += [0x90, 0x95, 0x97, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F]
PUBACK_CODES = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
SUBACK_CODES = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]
DISCONNECT_CODES = [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F]
DISCONNECT_CODES += [0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D]
DISCONNECT_CODES += [0x9E, 0x9F, 0xA0, 0xA1, 0xA2]


class PahoEncoder(Client):
    """paho's MQTT 5 client with its outgoing queue captured instead of written."""

    def __init__(self, client_id: str = "reference") -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=V5)
        self.sent: list[bytes] = []

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        self.sent.append(bytes(packet))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish_bytes(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        packet_id: int,
        properties: PahoProperties | None = None,
    ) -> bytes:
        with socket.socket() as sock:  # paho publishes only while it has a socket
            self._sock = sock
            try:
                mid = packet_id if qos else 0
                self._send_publish(mid, topic.encode(), payload, qos, properties=properties)
            finally:
                self._sock = None
        return self.sent.pop()


def whole(stream: bytes) -> list[packets.Packet]:
    buffer = bytearray(stream)
    found = packets.split_packets(buffer, 1 << 20)
    assert not buffer
    return found


def paho_properties(props: PahoProperties | None) -> packets_v5.Properties:
    """paho's decoded properties as ours are given: identifier -> value (lists for the two
    that repeat)."""
    read: packets_v5.Properties = {}
    if props is None:
        return read
    for name, ident in props.names.items():
        compressed = name.replace(" ", "")
        if hasattr(props, compressed):
            value = getattr(props, compressed)
            read[ident] = list(value) if isinstance(value, list) else value
    return read


def build(packet_type: int, values: dict[str, Any]) -> PahoProperties:
    props = PahoProperties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


def packed(packet_type: int, values: dict[str, Any]) -> bytes:
    """Properties as paho encodes them, their length first."""
    data: bytes = build(packet_type, values).pack()  # type: ignore[no-untyped-call]
    return data


USER_PROPERTIES = st.lists(st.tuples(TEXT, TEXT), max_size=3)


def _with_user_properties(values: dict[str, Any], users: list[tuple[str, str]]) -> dict[str, Any]:
    if users:
        values["UserProperty"] = users
    return values


PUBLISH_PROPERTIES = st.builds(
    lambda fixed, users, ids: {
        **{k: v for k, v in fixed.items() if v is not None},
        **({"UserProperty": users} if users else {}),
        **({"SubscriptionIdentifier": ids} if ids else {}),
    },
    st.fixed_dictionaries(
        {
            "PayloadFormatIndicator": st.none() | st.integers(0, 1),
            "MessageExpiryInterval": st.none() | FOUR_BYTES,
            "ContentType": st.none() | TEXT,
            "ResponseTopic": st.none() | TOPIC_TEXT,
            "CorrelationData": st.none() | st.binary(max_size=30),
        }
    ),
    USER_PROPERTIES,
    st.lists(st.integers(1, 268_435_455), max_size=3),
)

CONNACK_PROPERTIES = st.builds(
    lambda fixed, users: _with_user_properties(
        {k: v for k, v in fixed.items() if v is not None}, users
    ),
    st.fixed_dictionaries(
        {
            "SessionExpiryInterval": st.none() | FOUR_BYTES,
            "ReceiveMaximum": st.none() | st.integers(1, 65535),
            "MaximumQoS": st.none() | st.integers(0, 1),
            "RetainAvailable": st.none() | st.integers(0, 1),
            "MaximumPacketSize": st.none() | st.integers(1, 268_435_455),
            "AssignedClientIdentifier": st.none() | TEXT,
            "TopicAliasMaximum": st.none() | st.integers(0, 65535),
            "ReasonString": st.none() | TEXT,
            "WildcardSubscriptionAvailable": st.none() | st.integers(0, 1),
            "SubscriptionIdentifierAvailable": st.none() | st.integers(0, 1),
            "SharedSubscriptionAvailable": st.none() | st.integers(0, 1),
            "ServerKeepAlive": st.none() | st.integers(0, 65535),
            "ResponseInformation": st.none() | TEXT,
            "ServerReference": st.none() | TEXT,
        }
    ),
    USER_PROPERTIES,
)

ACK_PROPERTIES = st.builds(
    lambda reason, users: _with_user_properties(
        {"ReasonString": reason} if reason is not None else {}, users
    ),
    st.none() | TEXT,
    USER_PROPERTIES,
)


# --- encoders: ours and paho's build the same bytes ---


@fuzz
@given(
    client_id=st.text(min_size=1, max_size=40),
    credentials=st.none() | st.tuples(st.text(max_size=30), st.none() | st.text(max_size=30)),
    will=st.none() | st.tuples(TOPIC_TEXT, PAYLOADS, QOS, st.booleans()),
    keepalive_s=st.integers(0, 65535),
    clean_start=st.booleans(),
    session_expiry_s=st.sampled_from([0, 1, 3600, packets_v5.SESSION_NEVER_EXPIRES]),
    receive_maximum=st.none() | st.integers(1, 65535),
    max_packet_size=st.none() | st.integers(1, 268_435_455),
)
def test_connect5_is_built_as_paho_builds_it(
    client_id: str,
    credentials: tuple[str, str | None] | None,
    will: tuple[str, bytes, int, bool] | None,
    keepalive_s: int,
    clean_start: bool,
    session_expiry_s: int,
    receive_maximum: int | None,
    max_packet_size: int | None,
) -> None:
    paho = PahoEncoder(client_id)
    paho._clean_start = clean_start
    ours_will = None
    if will is not None:
        topic, payload, qos, retain = will
        paho.will_set(topic, payload, qos, retain)
        ours_will = packets.Will(topic, payload, qos, retain)
    username, password = credentials or (None, None)
    if username is not None:
        paho.username_pw_set(username, password)
    values: dict[str, Any] = {}
    if session_expiry_s:
        values["SessionExpiryInterval"] = session_expiry_s
    if receive_maximum is not None:
        values["ReceiveMaximum"] = receive_maximum
    if max_packet_size is not None:
        values["MaximumPacketSize"] = max_packet_size
    paho._connect_properties = build(PacketTypes.CONNECT, values) if values else None
    paho._send_connect(keepalive_s)
    ours = packets_v5.connect5(
        client_id,
        username=username,
        password=password,
        will=ours_will,
        keepalive_s=keepalive_s,
        clean_start=clean_start,
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        max_packet_size=max_packet_size,
    )
    assert ours == paho.sent[0]


@fuzz
@given(topic=TOPIC_TEXT, payload=PAYLOADS, qos=QOS, packet_id=PACKET_IDS, retain=st.booleans())
def test_publish5_is_built_as_paho_builds_it_and_paho_reads_it_back(
    topic: str, payload: bytes, qos: int, packet_id: int, retain: bool
) -> None:
    ours = packets_v5.publish5(topic, payload, qos=qos, packet_id=packet_id, retain=retain)
    paho = PahoEncoder()
    with socket.socket() as sock:
        paho._sock = sock
        paho._send_publish(packet_id if qos else 0, topic.encode(), payload, qos, retain)
        paho._sock = None
    assert ours == paho.sent[0]
    [(kind, flags, body)] = whole(ours)
    read = paho_packet.decode_publish(kind | flags, body, V5)
    assert (read.topic.decode(), read.payload, read.qos, read.retain, read.mid) == (
        topic,
        payload,
        qos,
        retain,
        packet_id if qos else 0,
    )


@fuzz
@given(
    topic_filter=st.sampled_from(["telecare/v1/+/alarm", "$share/g/telecare/v1/#", "#"])
    | TOPIC_TEXT,
    qos=QOS,
    packet_id=PACKET_IDS,
)
def test_subscribe5_is_built_as_paho_builds_it(topic_filter: str, qos: int, packet_id: int) -> None:
    paho = PahoEncoder()
    paho._last_mid = packet_id - 1
    paho._send_subscribe(False, [(topic_filter.encode(), SubscribeOptions(qos=qos))])
    assert packets_v5.subscribe5(packet_id, topic_filter, qos) == paho.sent[0]


def test_a_receive_maximum_out_of_range_is_not_sent() -> None:
    for bad in (0, 65536):
        with pytest.raises(ValueError, match="receive maximum"):
            packets_v5.connect5(
                "x", username=None, password=None, will=None, keepalive_s=30, receive_maximum=bad
            )


# --- decoders: ours read what paho's decoders read, properties included ---


@fuzz
@given(
    topic=TOPIC_TEXT,
    payload=PAYLOADS,
    qos=QOS,
    packet_id=PACKET_IDS,
    values=PUBLISH_PROPERTIES,
)
def test_a_publish5_with_properties_is_read_as_paho_reads_it(
    topic: str, payload: bytes, qos: int, packet_id: int, values: dict[str, Any]
) -> None:
    """The payload starts where the properties end, whatever they hold."""
    props = build(PacketTypes.PUBLISH, values) if values else None
    data = PahoEncoder().publish_bytes(topic, payload, qos, packet_id, props)
    [(kind, flags, body)] = whole(data)
    reference = paho_packet.decode_publish(kind | flags, body, V5)
    read_topic, read_id, read_payload, read_props = packets_v5.parse_publish5(flags, body)
    assert (read_topic, read_id, read_payload) == (
        reference.topic.decode(),
        reference.mid,
        reference.payload,
    )
    assert read_payload == payload
    assert read_props == paho_properties(reference.properties)


@fuzz
@given(
    code=st.sampled_from([0, *CONNACK_FAILURES]),
    session_present=st.booleans(),
    values=CONNACK_PROPERTIES,
)
def test_connack5_is_read_as_paho_reads_it(
    code: int, session_present: bool, values: dict[str, Any]
) -> None:
    session_present = session_present and code == 0  # a refusal never has a session
    body = bytes([int(session_present), code]) + packed(PacketTypes.CONNACK, values)
    [(kind, flags, read_body)] = whole(b"\x20" + packets.remaining_length(len(body)) + body)
    reference = paho_packet.decode_connack(kind | flags, read_body, V5)
    present, read_code, props = packets_v5.parse_connack5(flags, read_body)
    assert (present, read_code) == (bool(reference.flags & 1), reference.reason.value)
    assert props == paho_properties(reference.properties)


@fuzz
@given(
    packet_id=PACKET_IDS,
    code=st.sampled_from(PUBACK_CODES),
    values=ACK_PROPERTIES,
    form=st.sampled_from(["id only", "reason code", "properties"]),
)
def test_puback5_is_read_as_paho_reads_it(
    packet_id: int, code: int, values: dict[str, Any], form: str
) -> None:
    """The three lengths a PUBACK may have: the id alone means success."""
    body = packet_id.to_bytes(2, "big")
    if form != "id only":
        body += bytes([code])
    if form == "properties":
        body += packed(PacketTypes.PUBACK, values)
    reference = paho_packet.decode_puback(0x40, body, V5)
    read_id, read_code, props = packets_v5.parse_ack5(0, body)
    assert (read_id, read_code) == (reference.mid, reference.reason.value)
    assert props == paho_properties(reference.properties)


@fuzz
@given(
    packet_id=PACKET_IDS,
    codes=st.lists(st.sampled_from(SUBACK_CODES), min_size=1, max_size=4),
    values=ACK_PROPERTIES,
)
def test_suback5_is_read_as_paho_reads_it(
    packet_id: int, codes: list[int], values: dict[str, Any]
) -> None:
    body = packet_id.to_bytes(2, "big") + packed(PacketTypes.SUBACK, values) + bytes(codes)
    reference = paho_packet.decode_suback(0x90, body, V5)
    read_id, read_codes, props = packets_v5.parse_suback5(0, body)
    assert (read_id, list(read_codes)) == (
        reference.mid,
        [c.value for c in reference.reason_codes],
    )
    assert props == paho_properties(reference.properties)


@fuzz
@given(
    code=st.sampled_from(DISCONNECT_CODES),
    values=st.builds(
        lambda ack, expiry, server: {
            **ack,
            **({"SessionExpiryInterval": expiry} if expiry is not None else {}),
            **({"ServerReference": server} if server is not None else {}),
        },
        ACK_PROPERTIES,
        st.none() | FOUR_BYTES,
        st.none() | TEXT,
    ),
    form=st.sampled_from(["empty", "reason code", "properties"]),
)
def test_disconnect5_is_read_as_paho_reads_it(code: int, values: dict[str, Any], form: str) -> None:
    body = b"" if form == "empty" else bytes([code])
    if form == "properties":
        body += packed(PacketTypes.DISCONNECT, values)
    reference = paho_packet.decode_disconnect(0xE0, body, V5)
    read_code, props = packets_v5.parse_disconnect5(0, body)
    assert read_code == (reference.reason.value if reference.reason is not None else 0)
    assert props == paho_properties(reference.properties)


@pytest.mark.parametrize(
    ("stream", "read"),
    [  # byte vectors written out from the MQTT 5 specification, section 3
        ("2003000000", ("connack", (False, 0, {}))),
        ("2003010000", ("connack", (True, 0, {}))),
        ("2006000003210014", ("connack", (False, 0, {0x21: 20}))),  # receive maximum 20
        ("2003008700", ("connack", (False, 0x87, {}))),  # not authorized
        ("20020001", ("connack", (False, 0x84, {}))),  # 3.1.1: unacceptable protocol version
        ("20020005", ("connack", (False, 0x87, {}))),  # 3.1.1: not authorised
        ("40021234", ("puback", (0x1234, 0, {}))),
        ("4003123410", ("puback", (0x1234, 0x10, {}))),  # no matching subscribers
        ("400412348700", ("puback", (0x1234, 0x87, {}))),
        ("9004000a0001", ("suback", (10, b"\x01", {}))),
        ("9004000a0087", ("suback", (10, b"\x87", {}))),
        ("e0018e", ("disconnect", (0x8E, {}))),  # session taken over
        ("e000", ("disconnect", (0, {}))),
        ("30080003612f62006869", ("publish", ("a/b", 0, b"hi", {}))),
        ("320a0003612f62000a006869", ("publish", ("a/b", 10, b"hi", {}))),
        ("320c0003612f62000a0201016869", ("publish", ("a/b", 10, b"hi", {1: 1}))),
    ],
)
def test_mqtt5_packets_of_the_specification_are_read(stream: str, read: tuple[str, object]) -> None:
    [(kind, flags, body)] = whole(bytes.fromhex(stream))
    what, value = read
    if what == "connack":
        assert kind == packets.CONNACK and packets_v5.parse_connack5(flags, body) == value
    elif what == "puback":
        assert kind == packets.PUBACK and packets_v5.parse_ack5(flags, body) == value
    elif what == "suback":
        assert kind == packets.SUBACK and packets_v5.parse_suback5(flags, body) == value
    elif what == "disconnect":
        assert kind == packets.DISCONNECT and packets_v5.parse_disconnect5(flags, body) == value
    else:
        assert kind == packets.PUBLISH and packets_v5.parse_publish5(flags, body) == value


def test_a_broker_that_does_not_speak_mqtt5_answers_unsupported_protocol_version() -> None:
    """A 3.1.1 broker answers an MQTT 5 CONNECT with its own CONNACK, return code 1 (MQTT
    3.1.1, section 3.1.2.2); an MQTT 5 broker that will not take it says 0x84. Both read as
    UNSUPPORTED_PROTOCOL_VERSION, what the client falls back to 3.1.1 on; a 3.1.1 CONNACK
    that *accepts* an MQTT 5 CONNECT is nonsense and refused."""
    for stream in ("20020001", "2003008400"):
        [(_, flags, body)] = whole(bytes.fromhex(stream))
        assert packets_v5.parse_connack5(flags, body)[1] == packets_v5.UNSUPPORTED_PROTOCOL_VERSION
    with pytest.raises(ProtocolError, match=r"3\.1\.1 CONNACK"):
        packets_v5.parse_connack5(0, bytes.fromhex("0000"))


# --- reads cut anywhere, or many packets in one read ---


def _puback5(packet_id: int, values: dict[str, Any]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"\x10" + packed(PacketTypes.PUBACK, values)
    return b"\x40" + packets.remaining_length(len(body)) + body


SERVER_PACKETS_5 = st.one_of(
    st.builds(
        lambda topic, payload, qos, packet_id, values: PahoEncoder().publish_bytes(
            topic,
            payload,
            qos,
            packet_id,
            build(PacketTypes.PUBLISH, values) if values else None,
        ),
        TOPIC_TEXT,
        st.binary(max_size=200),
        QOS,
        PACKET_IDS,
        PUBLISH_PROPERTIES,
    ),
    st.builds(_puback5, PACKET_IDS, ACK_PROPERTIES),
    st.builds(
        lambda packet_id: b"\x90\x04" + packet_id.to_bytes(2, "big") + b"\x00\x01", PACKET_IDS
    ),
    st.just(bytes.fromhex("2006010003210014")),
    st.just(bytes.fromhex("d000")),
)


def read5(packet: packets.Packet) -> object:
    """What MqttConnection asks of the packet layer for each kind, on an MQTT 5 connection."""
    kind, flags, body = packet
    if kind == packets.PUBLISH:
        return packets_v5.parse_publish5(flags, body)
    if kind == packets.PUBACK:
        return packets_v5.parse_ack5(flags, body)
    if kind == packets.SUBACK:
        return packets_v5.parse_suback5(flags, body)
    if kind == packets.CONNACK:
        return packets_v5.parse_connack5(flags, body)
    if kind == packets.DISCONNECT:
        return packets_v5.parse_disconnect5(flags, body)
    return None


@fuzz
@given(stream=st.lists(SERVER_PACKETS_5, min_size=1, max_size=8))
def test_an_mqtt5_stream_cut_at_every_byte_or_read_at_once_gives_the_same_packets(
    stream: list[bytes],
) -> None:
    data = b"".join(stream)
    expected = whole(data)
    assert [read5(p) for p in expected] == [read5(p) for s in stream for p in whole(s)]
    for cut in range(1, len(data)):
        buffer = bytearray(data[:cut])
        first = packets.split_packets(buffer, 1 << 20)
        buffer += data[cut:]
        assert first + packets.split_packets(buffer, 1 << 20) == expected and not buffer


# --- malformed input: ProtocolError and nothing else ---

PARSERS_5 = [
    (packets.PUBLISH, packets_v5.parse_publish5),
    (packets.PUBACK, packets_v5.parse_ack5),
    (packets.SUBACK, packets_v5.parse_suback5),
    (packets.CONNACK, packets_v5.parse_connack5),
    (packets.DISCONNECT, packets_v5.parse_disconnect5),
]


@fuzz
@given(
    which=st.sampled_from(PARSERS_5),
    flags=st.sampled_from([0, 0, 0, 2, 1, 3, 8, 10]),
    body=st.binary(max_size=120),
)
def test_random_mqtt5_bodies_raise_only_protocol_errors(
    which: tuple[int, Any], flags: int, body: bytes
) -> None:
    _, parse = which
    with contextlib.suppress(ProtocolError):
        parse(flags, body)


@fuzz
@given(stream=SERVER_PACKETS_5, position=st.integers(0, 400), byte=st.integers(0, 255))
def test_an_mqtt5_packet_with_one_byte_changed_raises_only_protocol_errors(
    stream: bytes, position: int, byte: int
) -> None:
    """A damaged property length, identifier or string length: the parse fails cleanly or
    reads something else whole, never reads past the packet nor raises anything else."""
    [(kind, flags, body)] = whole(stream)
    assume(body)
    damaged = bytearray(body)
    damaged[position % len(body)] = byte
    with contextlib.suppress(ProtocolError):
        read5((kind, flags, bytes(damaged)))


@fuzz
@given(
    block=st.binary(max_size=60),
    allowed=st.sampled_from(
        [
            packets_v5._PUBLISH_PROPERTIES,
            packets_v5._CONNACK_PROPERTIES,
            packets_v5._ACK_PROPERTIES,
            packets_v5._DISCONNECT_PROPERTIES,
        ]
    ),
    trailer=st.binary(max_size=10),
)
def test_random_property_blocks_raise_only_protocol_errors_and_stay_in_bounds(
    block: bytes, allowed: frozenset[int], trailer: bytes
) -> None:
    body = packets.remaining_length(len(block)) + block + trailer
    try:
        _, end = packets_v5.parse_properties(body, 0, allowed)
    except ProtocolError:
        return
    assert end == len(body) - len(trailer), "the properties end where their length says"


@pytest.mark.parametrize(
    ("parse", "flags", "body", "why"),
    [
        (packets_v5.parse_publish5, 2, "0003612f62000a 05 0100", "longer than the packet"),
        (packets_v5.parse_publish5, 0, "0003612f62 04 01000101", "more than once"),
        (packets_v5.parse_publish5, 0, "0003612f62 03 210001", "not allowed"),  # receive maximum
        (packets_v5.parse_publish5, 0, "0003612f62 03 230001", "topic alias"),
        (packets_v5.parse_publish5, 0, "0000 00", "topic alias"),  # empty topic: alias needed
        (packets_v5.parse_publish5, 4, "0003612f62000a00", "QoS 2"),
        (packets_v5.parse_publish5, 2, "0003612f620000 00", "packet id 0"),
        (packets_v5.parse_publish5, 0, "0003612f62 ffffffff7f", "more than 4 bytes"),
        (packets_v5.parse_publish5, 0, "0003612f62 04 030005ab", "string runs past"),
        (packets_v5.parse_publish5, 0, "0003612f62 04 0300 02ff", "string runs past"),
        (packets_v5.parse_publish5, 0, "0003612f62 05 030002fffe", "malformed"),  # not UTF-8
        (packets_v5.parse_publish5, 0, "0003612f62 02 0201", "runs past"),  # 4-byte int cut
        (packets_v5.parse_publish5, 0, "0003612f62 04 03000100", "U\\+0000"),  # MQTT-1.5.4-2
        (packets_v5.parse_publish5, 0, "0003610062 00", "U\\+0000"),
        (packets_v5.parse_connack5, 0, "01870000", "session present"),
        (packets_v5.parse_connack5, 0, "00000321000000", "longer than"),
        (packets_v5.parse_connack5, 0, "0000 03 210000", "0x21 of 0"),  # receive maximum 0
        (packets_v5.parse_connack5, 0, "0000 02 2402", "0x24 of 2"),  # maximum QoS 2
        (packets_v5.parse_connack5, 0, "0000 05 2700000000", "0x27 of 0"),
        (packets_v5.parse_connack5, 0, "0001 00", "reason code"),  # 0x01 is no CONNACK code
        (packets_v5.parse_connack5, 0, "0000 02 0101", "not allowed"),
        (packets_v5.parse_connack5, 0, "02000000", "malformed"),
        (packets_v5.parse_ack5, 0, "000a 01", "reason code"),
        (packets_v5.parse_ack5, 0, "000a 00 0321000a", "not allowed"),
        (packets_v5.parse_ack5, 0, "000a 00 00 ff", "longer than"),
        (packets_v5.parse_suback5, 0, "000a 00", "malformed"),
        (packets_v5.parse_suback5, 0, "000a 00 03", "reason code"),
        (packets_v5.parse_suback5, 0, "000a 03 1f0000", "without a reason code"),
        (packets_v5.parse_disconnect5, 0, "05", "reason code"),
        (packets_v5.parse_disconnect5, 2, "", "flags"),
    ],
)
def test_malformed_mqtt5_packets_are_refused(parse: Any, flags: int, body: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse(flags, bytes.fromhex(body.replace(" ", "")))
