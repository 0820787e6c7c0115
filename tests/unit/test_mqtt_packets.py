"""The lean client's packet layer (telecare.mqtt.packets) on its own, no broker.

The reference codec is paho-mqtt 2.x: what our encoders build is compared byte for byte with
what paho's client builds for the same CONNECT, PUBLISH, SUBSCRIBE, PUBACK, PINGREQ and
DISCONNECT (its `_send_*` methods, with the queue that would write them to a socket replaced),
and what our decoders read from CONNACK, PUBLISH, PUBACK and SUBACK bodies is compared with what
paho's own decoders (`paho.mqtt._packet`) read from them. Both are private API of paho; the
byte vectors from the MQTT 3.1.1 specification below pin the same facts should paho's internals
move. Then: a stream cut at every byte or coalesced into one read gives the same packets, and
hypothesis-made malformed input (random bytes, truncated lengths, 5-byte remaining lengths,
oversized packets) raises nothing but `ProtocolError` and never leaves more buffered than one
packet of the maximum size.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet as paho_packet
from paho.mqtt.client import Client, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from telecare.mqtt import packets
from telecare.mqtt.packets import ProtocolError

EXAMPLES = int(os.environ.get("TELECARE_FUZZ_EXAMPLES", "300"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
V311 = MQTTProtocolVersion.MQTTv311

# Topic names and filters as devices and the ingest use them; paho refuses an empty will topic.
TOPIC_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="+#\x00"),
    min_size=1,
    max_size=80,
)
FILTER_TEXT = st.sampled_from(["telecare/v1/#", "$share/ingest/telecare/v1/#", "a/+/b", "#"])
PAYLOADS = st.binary(max_size=600)
PACKET_IDS = st.integers(1, 65535)
QOS = st.integers(0, 1)


class PahoEncoder(Client):
    """paho's MQTT 3.1.1 client with its outgoing queue captured instead of written."""

    def __init__(self, client_id: str = "reference", clean_session: bool = True) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=V311,
        )
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

    def publish_bytes(self, topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
        with socket.socket() as sock:  # paho publishes only while it has a socket
            self._sock = sock
            try:
                self._send_publish(packet_id, topic.encode(), payload, qos, retain=False)
            finally:
                self._sock = None
        return self.sent.pop()


def whole(stream: bytes, max_size: int = packets.DEFAULT_MAX_PACKET_SIZE) -> list[packets.Packet]:
    """The packets of a stream read at once; nothing may stay behind."""
    buffer = bytearray(stream)
    found = packets.split_packets(buffer, max_size)
    assert not buffer
    return found


# --- encoders: ours and paho's build the same bytes ---


@fuzz
@given(
    client_id=st.text(min_size=1, max_size=40),
    credentials=st.none() | st.tuples(st.text(max_size=30), st.none() | st.text(max_size=30)),
    will=st.none() | st.tuples(TOPIC_TEXT, PAYLOADS, QOS, st.booleans()),
    keepalive_s=st.integers(0, 65535),
    clean_session=st.booleans(),
)
def test_connect_is_built_as_paho_builds_it(
    client_id: str,
    credentials: tuple[str, str | None] | None,
    will: tuple[str, bytes, int, bool] | None,
    keepalive_s: int,
    clean_session: bool,
) -> None:
    paho = PahoEncoder(client_id, clean_session)
    ours_will = None
    if will is not None:
        topic, payload, qos, retain = will
        paho.will_set(topic, payload, qos, retain)
        ours_will = packets.Will(topic, payload, qos, retain)
    username, password = credentials or (None, None)
    if username is not None:
        paho.username_pw_set(username, password)
    paho._send_connect(keepalive_s)
    ours = packets.connect(
        client_id,
        username=username,
        password=password,
        will=ours_will,
        keepalive_s=keepalive_s,
        clean_session=clean_session,
    )
    assert ours == paho.sent[0]


@fuzz
@given(topic=TOPIC_TEXT, payload=PAYLOADS, qos=QOS, packet_id=PACKET_IDS, retain=st.booleans())
def test_publish_is_built_as_paho_builds_it_and_paho_reads_it_back(
    topic: str, payload: bytes, qos: int, packet_id: int, retain: bool
) -> None:
    ours = packets.publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain)
    paho = PahoEncoder()
    with socket.socket() as sock:
        paho._sock = sock
        paho._send_publish(packet_id if qos else 0, topic.encode(), payload, qos, retain)
        paho._sock = None
    assert ours == paho.sent[0]
    [(kind, flags, body)] = whole(ours)
    read = paho_packet.decode_publish(kind | flags, body, V311)
    assert (read.topic.decode(), read.payload, read.qos, read.retain) == (
        topic,
        payload,
        qos,
        retain,
    )
    assert read.mid == (packet_id if qos else 0)


@fuzz
@given(topic_filter=FILTER_TEXT | TOPIC_TEXT, qos=QOS, packet_id=PACKET_IDS)
def test_subscribe_is_built_as_paho_builds_it(topic_filter: str, qos: int, packet_id: int) -> None:
    paho = PahoEncoder()
    paho._last_mid = packet_id - 1  # paho numbers its packets itself: make it pick ours
    paho._send_subscribe(False, [(topic_filter.encode(), qos)])
    assert packets.subscribe(packet_id, topic_filter, qos) == paho.sent[0]


@given(packet_id=PACKET_IDS)
def test_puback_pingreq_and_disconnect_are_built_as_paho_builds_them(packet_id: int) -> None:
    paho = PahoEncoder()
    paho._send_puback(packet_id)
    paho._send_pingreq()
    paho._send_disconnect()
    assert paho.sent == [
        packets.puback(packet_id),
        packets.PINGREQ_PACKET,
        packets.DISCONNECT_PACKET,
    ]


@given(length=st.integers(0, 268_435_455))
def test_remaining_length_is_encoded_as_paho_encodes_it(length: int) -> None:
    assert packets.remaining_length(length) == bytes(
        PahoEncoder()._pack_remaining_length(bytearray(), length)
    )


@pytest.mark.parametrize(
    ("length", "encoded"),
    [  # MQTT 3.1.1, table 2.4: the smallest and largest of each size
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (2_097_151, "ffff7f"),
        (2_097_152, "80808001"),
        (268_435_455, "ffffff7f"),
    ],
)
def test_remaining_length_matches_the_specification(length: int, encoded: str) -> None:
    assert packets.remaining_length(length).hex() == encoded
    header = bytes([packets.PUBLISH]) + bytes.fromhex(encoded)
    buffer = bytearray(header)
    found = packets.split_packets(buffer, max_size=length + len(header))
    if length:
        assert (found, bytes(buffer)) == ([], header), "a header read, its body awaited"
    else:
        assert (found, bytes(buffer)) == ([(packets.PUBLISH, 0, b"")], b"")


# --- decoders: ours read what paho's decoders read ---


@fuzz
@given(topic=TOPIC_TEXT, payload=PAYLOADS, qos=QOS, packet_id=PACKET_IDS)
def test_a_publish_paho_builds_is_read_as_paho_reads_it(
    topic: str, payload: bytes, qos: int, packet_id: int
) -> None:
    [(kind, flags, body)] = whole(PahoEncoder().publish_bytes(topic, payload, qos, packet_id))
    assert kind == packets.PUBLISH
    reference = paho_packet.decode_publish(kind | flags, body, V311)
    assert packets.parse_publish(flags, body) == (
        reference.topic.decode(),
        reference.mid,
        reference.payload,
    )


@given(session_present=st.booleans(), code=st.integers(0, 5))
def test_connack_is_read_as_paho_reads_it(session_present: bool, code: int) -> None:
    [(kind, flags, body)] = whole(bytes([0x20, 2, int(session_present), code]))
    assert kind == packets.CONNACK
    reference = paho_packet.decode_connack(kind | flags, body, V311)
    assert packets.parse_connack(flags, body) == (bool(reference.flags & 1), reference.rc)


@given(packet_id=PACKET_IDS, code=st.sampled_from([0, 1, 2, 0x80]))
def test_suback_and_puback_are_read_as_paho_reads_them(packet_id: int, code: int) -> None:
    stream = struct.pack("!BBHB", 0x90, 3, packet_id, code) + struct.pack(
        "!BBH", 0x40, 2, packet_id
    )
    [(kind, suback_flags, suback_body), (puback, puback_flags, puback_body)] = whole(stream)
    assert (kind, puback) == (packets.SUBACK, packets.PUBACK)
    reference = paho_packet.decode_suback(0x90, suback_body, V311)
    assert packets.parse_suback(suback_flags, suback_body) == (
        reference.mid,
        bytes(reference.granted_qos),
    )
    assert packets.parse_ack(puback_flags, puback_body) == (
        paho_packet.decode_puback(0x40, puback_body, V311).mid
    )


@pytest.mark.parametrize(
    ("stream", "read"),
    [  # byte vectors written out from the MQTT 3.1.1 specification, section 3
        ("20020000", ("connack", (False, 0))),
        ("20020100", ("connack", (True, 0))),  # session present (3.2.2.2)
        ("20020005", ("connack", (False, 5))),  # not authorised (table 3.1)
        ("9003000a01", ("suback", (10, b"\x01"))),
        ("9003000a80", ("suback", (10, b"\x80"))),  # failure (3.9.3)
        ("40021234", ("puback", 0x1234)),
        ("d000", ("pingresp", None)),
        ("300a0003612f6268656c6c6f", ("publish", ("a/b", 0, b"hello"))),
        ("320c0003612f62000a68656c6c6f", ("publish", ("a/b", 10, b"hello"))),
    ],
)
def test_packets_of_the_specification_are_read(stream: str, read: tuple[str, object]) -> None:
    [(kind, flags, body)] = whole(bytes.fromhex(stream))
    what, value = read
    if what == "connack":
        assert kind == packets.CONNACK and packets.parse_connack(flags, body) == value
    elif what == "suback":
        assert kind == packets.SUBACK and packets.parse_suback(flags, body) == value
    elif what == "puback":
        assert kind == packets.PUBACK and packets.parse_ack(flags, body) == value
    elif what == "pingresp":
        assert (kind, flags, body) == (packets.PINGRESP, 0, b"")
    else:
        assert kind == packets.PUBLISH and packets.parse_publish(flags, body) == value


# --- reads cut anywhere, or many packets in one read ---

SERVER_PACKETS = st.one_of(
    st.builds(
        lambda topic, payload, qos, packet_id: packets.publish(
            topic, payload, qos=qos, packet_id=packet_id
        ),
        TOPIC_TEXT,
        st.binary(max_size=300),
        QOS,
        PACKET_IDS,
    ),
    st.builds(packets.puback, PACKET_IDS),
    st.builds(lambda packet_id: struct.pack("!BBHB", 0x90, 3, packet_id, 1), PACKET_IDS),
    st.just(bytes.fromhex("20020100")),
    st.just(bytes.fromhex("d000")),
)


@fuzz
@given(stream=st.lists(SERVER_PACKETS, min_size=1, max_size=12))
def test_a_stream_cut_at_every_byte_or_read_at_once_gives_the_same_packets(
    stream: list[bytes],
) -> None:
    data = b"".join(stream)
    expected = whole(data)  # coalesced: every packet in one read
    assert [bytes([kind | flags]) for kind, flags, _ in expected] == [p[:1] for p in stream]
    byte_by_byte: list[packets.Packet] = []
    buffer = bytearray()
    for i in range(len(data)):
        buffer += data[i : i + 1]
        byte_by_byte += packets.split_packets(buffer)
    assert byte_by_byte == expected and not buffer
    for cut in range(1, len(data)):  # two reads, cut at every position
        buffer = bytearray(data[:cut])
        first = packets.split_packets(buffer)
        buffer += data[cut:]
        assert first + packets.split_packets(buffer) == expected and not buffer


def test_thousands_of_publishes_in_one_read_are_all_read() -> None:
    stream = b"".join(
        packets.publish(f"telecare/v1/dev-{n}/heartbeat", b"{}", qos=1, packet_id=n % 65535 + 1)
        for n in range(5000)
    )
    read = [packets.parse_publish(flags, body) for _, flags, body in whole(stream)]
    assert read[4999] == ("telecare/v1/dev-4999/heartbeat", 5000, b"{}")
    assert len(read) == 5000


# --- malformed input: ProtocolError and nothing else, and a bounded buffer ---


def read_as_the_client_does(packet: packets.Packet) -> None:
    """What MqttConnection._handle asks of the packet layer for each kind."""
    kind, flags, body = packet
    if kind == packets.PUBLISH:
        packets.parse_publish(flags, body)
    elif kind == packets.PUBACK:
        packets.parse_ack(flags, body)
    elif kind == packets.SUBACK:
        packets.parse_suback(flags, body)
    elif kind == packets.CONNACK:
        packets.parse_connack(flags, body)


def feed(chunks: list[bytes], max_size: int) -> None:
    """Feed `chunks` as successive reads until a ProtocolError, checking the buffer's bound."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        for packet in packets.split_packets(buffer, max_size):
            read_as_the_client_does(packet)
        # what stays is the start of one packet no longer than the maximum, or of its header
        assert len(buffer) < max(max_size, 5)


@fuzz
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=200), max_size=20),
    max_size=st.integers(2, 400),
)
def test_random_bytes_raise_only_protocol_errors(chunks: list[bytes], max_size: int) -> None:
    with contextlib.suppress(ProtocolError):
        feed(chunks, max_size)


@fuzz
@given(
    kind=st.sampled_from([0x20, 0x30, 0x32, 0x34, 0x36, 0x40, 0x90, 0xD0]),
    body=st.binary(max_size=40),
    declared=st.integers(0, 60),
    cut=st.integers(0, 60),
)
def test_truncated_or_misdeclared_packets_raise_only_protocol_errors(
    kind: int, body: bytes, declared: int, cut: int
) -> None:
    """A header that claims more or less than the body holds, cut anywhere."""
    stream = bytes([kind]) + packets.remaining_length(declared) + body
    with contextlib.suppress(ProtocolError):
        feed([stream[:cut], stream[cut:]], max_size=64)


@pytest.mark.parametrize(
    "header",
    ["30ffffffff01", "30ffffffff", "3080808080", "d080808080808001"],
)
def test_a_remaining_length_of_five_bytes_is_refused_before_its_body(header: str) -> None:
    with pytest.raises(ProtocolError, match="more than 4 bytes"):
        packets.split_packets(bytearray.fromhex(header), max_size=1 << 30)


def test_an_oversized_packet_is_refused_from_its_header_alone() -> None:
    body = packets.publish("t/x", b"x" * 100, qos=0)
    assert whole(body, max_size=len(body))  # exactly the maximum is taken
    buffer = bytearray(body[:3])  # the header, not the body
    with pytest.raises(ProtocolError, match=f"{len(body)} bytes over the maximum"):
        packets.split_packets(buffer, max_size=len(body) - 1)
    four_byte_header = bytearray.fromhex("30ffffff7f")  # 256 MiB announced
    with pytest.raises(ProtocolError, match="over the maximum"):
        packets.split_packets(four_byte_header)


@fuzz
@given(declared=st.integers(0, 268_435_455), max_size=st.integers(5, 1 << 20))
def test_any_declared_size_is_taken_or_refused_at_its_header(declared: int, max_size: int) -> None:
    header = bytes([packets.PUBLISH]) + packets.remaining_length(declared)
    buffer = bytearray(header)
    if len(header) + declared > max_size:
        with pytest.raises(ProtocolError):
            packets.split_packets(buffer, max_size)
    else:
        found = packets.split_packets(buffer, max_size)
        assert found == ([] if declared else [(packets.PUBLISH, 0, b"")])


@pytest.mark.parametrize("qos_flags", [0x04, 0x06, 0x0C])
def test_a_publish_of_qos_2_or_3_is_refused(qos_flags: int) -> None:
    body = packets.publish("t/x", b"payload", qos=1, packet_id=7)[2:]
    with pytest.raises(ProtocolError, match=r"QoS [23] refused"):
        packets.parse_publish(qos_flags, body)


@pytest.mark.parametrize(
    ("flags", "body"),
    [
        (0, b""),
        (0, b"\x00"),
        (0, b"\x00\x05a/b"),  # topic longer than the packet
        (2, b"\x00\x03a/b\x00"),  # QoS 1 with half a packet id
        (0, b"\x00\x02\xff\xfe"),  # topic not UTF-8
    ],
)
def test_a_malformed_publish_is_refused(flags: int, body: bytes) -> None:
    with pytest.raises(ProtocolError):
        packets.parse_publish(flags, body)


@pytest.mark.parametrize(
    ("parse", "flags", "body"),
    [
        (packets.parse_connack, 0, b"\x00"),
        (packets.parse_connack, 0, b"\x02\x00"),  # reserved flag bits
        (packets.parse_connack, 1, b"\x00\x00"),
        (packets.parse_ack, 0, b"\x00"),
        (packets.parse_ack, 0, b"\x00\x01\x00"),
        (packets.parse_suback, 0, b"\x00\x01"),  # no return code
        (packets.parse_suback, 0, b"\x00\x01\x03"),  # not a QoS nor 0x80
        (packets.parse_suback, 2, b"\x00\x01\x01"),
    ],
)
def test_malformed_acknowledgements_are_refused(
    parse: Callable[[int, bytes], object], flags: int, body: bytes
) -> None:
    with pytest.raises(ProtocolError):
        parse(flags, body)


# --- packet ids: unique while in flight ---


@fuzz
@given(last=st.integers(0, 65535), in_flight=st.sets(PACKET_IDS, max_size=300))
def test_a_packet_id_still_in_flight_is_never_given_again(last: int, in_flight: set[int]) -> None:
    packet_id = packets.next_packet_id(last, in_flight, len(in_flight))
    assert 1 <= packet_id <= 65535 and packet_id not in in_flight
    if packet_id > last:
        skipped = [*range(last + 1, packet_id)]
    else:  # wrapped past 65535
        skipped = [*range(last + 1, 65536), *range(1, packet_id)]
    assert in_flight.issuperset(skipped), "the first free id after the last one given"


def test_packet_ids_wrap_after_65535_past_those_in_flight() -> None:
    assert packets.next_packet_id(65535, set(), 0) == 1
    assert packets.next_packet_id(65534, {65535, 1, 2}, 3) == 3


def test_no_packet_id_when_all_are_in_flight() -> None:
    everything = set(range(1, 65536))
    assert packets.next_packet_id(100, everything, len(everything)) == 0
    everything.discard(99)
    assert packets.next_packet_id(100, everything, len(everything)) == 99
