"""What the alarm session asks of the lean MQTT client (mqtt/client.py, mqtt/persistent_session.py),
against real Mosquitto: a message is PUBACKed only when the application says so and the broker
redelivers the others after a reconnect; MQTT 5 with the receive maximum asked for and kept to,
reason codes read (a refused PUBLISH or SUBSCRIBE, a session taken over) and 3.1.1 again when
the broker does not speak 5; an in-flight window for what the client sends.

A broker that does not speak MQTT 5 is Mosquitto behind a gate that answers a protocol level 5
CONNECT as a 3.1.1 broker does (a 3.1.1 CONNACK, return code 1, then closes) and passes every
other connection through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.mqtt import packets, packets_v5
from telecare.mqtt.client import (
    BrokerDisconnected,
    Message,
    MqttError,
    PublishRefused,
    SubscribeRefused,
    connect,
)
from telecare.mqtt.persistent_session import Link, MqttSession
from tests.brokers import BACKEND_USER, PrivateBroker
from tests.support import Mqtt, wait_for


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [m.payload for m in self.messages if topic is None or m.topic == topic]

    async def wait(self, payload: bytes, within_s: float = 10) -> Message:
        async def arrived() -> Message | None:
            return next((m for m in self.messages if m.payload == payload), None)

        return await wait_for(arrived, within_s=within_s, what=f"message {payload!r}")


async def publish_all(broker: BrokerAddress, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 and wait until the broker has PUBACKed every one (so holds them)."""
    conn = await connect(broker, client_id=unique("pub"))
    try:
        await asyncio.gather(*(conn.publish(topic, p) for p in payloads))
    finally:
        await conn.disconnect()


async def barrier(broker: BrokerAddress, inbox: Inbox, topic: str) -> None:
    """Publish a QoS 0 marker to `topic` (subscribed by the connection under test) and wait for
    it: whatever the broker had decided to send before it has arrived by then."""
    marker = uuid.uuid4().hex.encode()
    conn = await connect(broker, client_id=unique("marker"))
    try:
        conn.publish(topic, marker, qos=0)
        await inbox.wait(marker)
    finally:
        await conn.disconnect()


@pytest.mark.parametrize("mqtt5", [False, True], ids=["3.1.1", "5"])
async def test_only_what_the_application_acknowledged_is_not_sent_again(
    mqtt: Mqtt, mqtt5: bool
) -> None:
    """Manual acknowledgement on a persistent session: the PUBACKed message is gone, the two
    left unacknowledged come back after a reconnect (the same session, `session_present`)."""
    client_id, topic = unique("manual"), f"{unique('manual')}/alarm"
    inbox = Inbox()
    conn = await connect(
        mqtt.broker,
        client_id=client_id,
        clean_session=False,
        manual_ack=True,
        on_publish=inbox,
        mqtt5=mqtt5,
        receive_maximum=10 if mqtt5 else None,
    )
    assert (conn.protocol, conn.session_present) == (5 if mqtt5 else 4, False)
    await conn.subscribe(f"{topic}/#", 1)
    await publish_all(mqtt.broker, f"{topic}/x", [b"committed", b"pending-1", b"pending-2"])
    first = await inbox.wait(b"committed")
    await inbox.wait(b"pending-2")
    assert first.qos == 1 and first.packet_id
    assert conn.puback(first.packet_id) is True
    assert conn.puback(first.packet_id) is False, "acknowledged once only"
    await conn.disconnect()

    again = Inbox()
    conn = await connect(
        mqtt.broker,
        client_id=client_id,
        clean_session=False,
        manual_ack=True,
        on_publish=again,
        mqtt5=mqtt5,
        receive_maximum=10 if mqtt5 else None,
    )
    try:
        assert conn.session_present is True
        await again.wait(b"pending-2")
        await barrier(mqtt.broker, again, f"{topic}/x")
        assert again.payloads()[:2] == [b"pending-1", b"pending-2"]
        assert b"committed" not in again.payloads()
        for message in again.messages:
            conn.puback(message.packet_id)
    finally:
        await conn.disconnect()


async def test_the_broker_holds_back_what_is_over_the_receive_maximum(mqtt: Mqtt) -> None:
    """MQTT 5, receive maximum 3: of ten messages held, three arrive; acknowledged as they
    come, all ten arrive in order on the same connection. (After PUBACKs Mosquitto 2.0.11 sends
    more than the receive maximum: the client counts that and takes them rather than drop the
    connection, which would take no alarm at all.)"""
    topic = unique("window")
    inbox = Inbox()
    conn = await connect(
        mqtt.broker,
        client_id=unique("window"),
        manual_ack=True,
        on_publish=inbox,
        mqtt5=True,
        receive_maximum=3,
    )
    try:
        assert conn.protocol == 5
        await conn.subscribe(f"{topic}/#", 1)
        await publish_all(mqtt.broker, f"{topic}/x", [b"%d" % n for n in range(10)])
        await barrier(mqtt.broker, inbox, f"{topic}/marker")
        assert inbox.payloads(f"{topic}/x") == [b"0", b"1", b"2"], "held at the receive maximum"
        acked = 0

        async def all_acknowledged() -> bool:
            nonlocal acked
            held = [m for m in inbox.messages if m.topic == f"{topic}/x"][acked:]
            for message in held:
                assert conn.puback(message.packet_id)
            acked += len(held)
            return acked == 10

        await wait_for(all_acknowledged, what="ten messages, each acknowledged")
        assert inbox.payloads(f"{topic}/x") == [b"%d" % n for n in range(10)]
        assert conn.is_open and conn.error is None
    finally:
        await conn.disconnect()


async def test_sent_publishes_keep_to_the_in_flight_window_and_their_order(mqtt: Mqtt) -> None:
    """`max_in_flight` on 3.1.1, and on MQTT 5 the broker's own receive maximum (Mosquitto:
    its max_inflight_messages, 20): the rest wait, in order, and every one is PUBACKed."""
    topic = unique("inflight")
    inbox = Inbox()
    listener = await connect(mqtt.broker, client_id=unique("listen"), on_publish=inbox)
    await listener.subscribe(f"{topic}/#", 1)
    try:
        for mqtt5, max_in_flight, window in [(False, 2, 2), (True, None, 20), (True, 5, 5)]:
            conn = await connect(
                mqtt.broker, client_id=unique("sender"), mqtt5=mqtt5, max_in_flight=max_in_flight
            )
            payloads = [f"{mqtt5}-{max_in_flight}-{n}".encode() for n in range(40)]
            sent = [conn.publish(f"{topic}/x", p) for p in payloads]  # no PUBACK read yet
            assert (conn.publishes_in_flight, conn.publishes_waiting) == (window, 40 - window)
            async with asyncio.timeout(10):
                await asyncio.gather(*sent)
            assert (conn.publishes_in_flight, conn.publishes_waiting) == (0, 0)
            await conn.disconnect()
            await inbox.wait(payloads[-1])
            assert [p for p in inbox.payloads() if p in payloads] == payloads
    finally:
        await listener.disconnect()


async def test_a_persistent_mqtt5_session_outlives_its_connection(mqtt: Mqtt) -> None:
    """Session Expiry Interval: without it an MQTT 5 session ends with its connection."""
    client_id, topic = unique("expiry"), unique("expiry")
    conn = await connect(mqtt.broker, client_id=client_id, clean_session=False, mqtt5=True)
    await conn.subscribe(f"{topic}/#", 1)
    await conn.disconnect()
    await publish_all(mqtt.broker, f"{topic}/x", [b"kept while away"])
    inbox = Inbox()
    conn = await connect(
        mqtt.broker, client_id=client_id, clean_session=False, mqtt5=True, on_publish=inbox
    )
    try:
        assert conn.session_present is True
        await inbox.wait(b"kept while away")
    finally:
        await conn.disconnect()
    clean = await connect(mqtt.broker, client_id=client_id, mqtt5=True)
    assert clean.session_present is False
    await clean.disconnect()


async def test_a_broker_that_disconnects_says_why(mqtt: Mqtt) -> None:
    """An MQTT 5 broker tells the connection it drops why: here a DISCONNECT with reason code
    0x95 for a packet over its maximum (which `publish()` itself refuses to send, knowing the
    broker's maximum from its CONNACK)."""
    conn = await connect(mqtt.broker, client_id=unique("too-large"), mqtt5=True)
    maximum = packets_v5.int_property(conn.connack_properties, packets_v5.MAXIMUM_PACKET_SIZE, 0)
    assert maximum, "Mosquitto says its max_packet_size"
    with pytest.raises(MqttError, match="over the broker's maximum"):
        conn.publish("too/large", b"x" * maximum)
    conn.write(packets_v5.publish5("too/large", b"x" * maximum, qos=0))  # written all the same
    async with asyncio.timeout(10):
        await asyncio.shield(conn.closed)
    assert isinstance(conn.error, BrokerDisconnected)
    assert conn.error.code == 0x95 and "packet too large" in str(conn.error)


# --- refusals an MQTT 5 broker explains ---


@pytest.fixture(scope="module")
def mute_account() -> Iterator[tuple[BrokerAddress, str]]:
    """An account of the shipped dynamic-security configuration with no role: it may connect,
    and neither subscribe nor publish."""
    with PrivateBroker(dynsec=True) as broker:
        username, password = unique("mute"), uuid.uuid4().hex
        subprocess.run(
            [
                "mosquitto_ctrl",
                *("-h", "127.0.0.1", "-p", str(broker.port)),
                *("-u", BACKEND_USER, "-P", broker.backend_password),
                *("dynsec", "createClient", username, "-p", password),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield parse_mqtt_url(f"mqtt://{username}:{password}@127.0.0.1:{broker.port}"), username


async def test_a_refused_publish_and_subscribe_give_their_reason_codes(
    mute_account: tuple[BrokerAddress, str],
) -> None:
    """In 3.1.1 a broker PUBACKs a PUBLISH it drops: MQTT 5 says it was not authorised."""
    address, username = mute_account
    conn = await connect(
        address,
        client_id=username,
        username=address.username,
        password=address.password,
        mqtt5=True,
    )
    try:
        with pytest.raises(PublishRefused, match="not authorized") as refused:
            await conn.publish("telecare/v1/x/ack", b"{}")
        assert refused.value.code == 0x87
        with pytest.raises(SubscribeRefused, match="not authorized") as sub_refused:
            await conn.subscribe("telecare/v1/#", 1)
        assert sub_refused.value.code == 0x87
        assert conn.is_open, "a refusal is an answer, not a broken connection"
    finally:
        await conn.disconnect()


# --- a broker that does not speak MQTT 5 ---


@contextlib.asynccontextmanager
async def mqtt311_gate(broker: BrokerAddress) -> AsyncIterator[BrokerAddress]:
    """An address where a protocol level 5 CONNECT is answered as a 3.1.1 broker answers it
    (MQTT 3.1.1, section 3.1.2.2: CONNACK return code 1, then the connection is closed) and
    any other connection is passed through to `broker`."""
    refused: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            buffer = bytearray(first)
            [(kind, _, body)] = packets.split_packets(buffer, 1 << 20)[:1]
            if kind == packets.CONNECT and body[6] == 5:  # after "\0\4MQTT": the level
                refused.append(first)
                writer.write(b"\x20\x02\x00\x01")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(broker.host, broker.port)
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield parse_mqtt_url(f"mqtt://127.0.0.1:{port}")
    finally:
        server.close()
    assert refused, "the MQTT 5 CONNECT reached the gate"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_a_broker_that_does_not_speak_mqtt5_is_spoken_to_in_3_1_1(
    mqtt: Mqtt, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telecare.mqtt.client")
    topic = unique("fallback")
    inbox = Inbox()
    async with mqtt311_gate(mqtt.broker) as gate:
        conn = await connect(
            gate,
            client_id=unique("fallback"),
            clean_session=False,
            manual_ack=True,
            on_publish=inbox,
            mqtt5=True,
            receive_maximum=5,
        )
        try:
            assert conn.protocol == 4
            await conn.subscribe(f"{topic}/#", 1)
            await publish_all(mqtt.broker, f"{topic}/x", [b"through the gate"])
            message = await inbox.wait(b"through the gate")
            assert conn.puback(message.packet_id)
            await conn.publish(f"{topic}/y", b"sent in 3.1.1")
        finally:
            await conn.disconnect()
    assert any("does not speak MQTT 5" in r.getMessage() for r in caplog.records)


# --- the alarm session (mqtt/persistent_session.py) on the lean client ---


@contextlib.asynccontextmanager
async def running(session: MqttSession, handler: object) -> AsyncIterator[None]:
    task = asyncio.create_task(session.run(handler))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(15):
            await session.connected.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("via_gate", [False, True], ids=["mqtt5", "3.1.1-fallback"])
async def test_the_alarm_session_acknowledges_after_handling_and_gets_the_rest_again(
    mqtt: Mqtt, via_gate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A message the handler did not acknowledge before the connection was lost comes back on
    the next connection (and an acknowledgement on the old link goes nowhere); one it
    acknowledged does not. Acks are published on the session's link and PUBACKed."""
    caplog.set_level(logging.INFO, logger="telecare.mqtt.persistent_session")
    topic = unique("alarms")
    seen: list[tuple[Link, Message]] = []

    async def handle(link: Link, message: Message) -> None:
        seen.append((link, message))
        if message.payload.startswith(b"ack-now"):
            await link.publish(f"{topic}/acks", message.payload)
            link.puback(message)

    async with contextlib.AsyncExitStack() as stack:
        address = mqtt.broker
        if via_gate:
            address = await stack.enter_async_context(mqtt311_gate(mqtt.broker))
        session = MqttSession(
            address,
            name=unique("alarms"),
            identifier=unique("alarm-session"),
            subscriptions=[(f"{topic}/+/alarm", 1)],
            metrics=Metrics(),
            queue_max=100,
            manual_ack=True,
            receive_maximum=10,
        )
        await stack.enter_async_context(running(session, handle))
        protocol = "3.1.1" if via_gate else "5"
        assert any(f"protocol={protocol}" in r.getMessage() for r in caplog.records)
        await publish_all(mqtt.broker, f"{topic}/d1/alarm", [b"ack-now-1", b"held-1"])

        async def both() -> bool:
            return {m.payload for _, m in seen} >= {b"ack-now-1", b"held-1"}

        await wait_for(both, what="both alarms handled")
        old_link = seen[-1][0]
        assert session.link is old_link
        old_link.connection.abort()  # the connection dies; the session reconnects

        async def held_again() -> bool:
            return [m.payload for _, m in seen].count(b"held-1") == 2

        await wait_for(held_again, within_s=15, what="the unacknowledged alarm redelivered")
        new_link, redelivered = seen[-1]
        assert new_link is not old_link and new_link.open and not old_link.open
        old_link.puback(redelivered)  # an old link acknowledges nothing on the new connection
        await publish_all(mqtt.broker, f"{topic}/d1/alarm", [b"ack-now-2"])

        async def third() -> bool:
            return any(m.payload == b"ack-now-2" for _, m in seen)

        await wait_for(third, what="a new alarm after the reconnect")
        assert [m.payload for _, m in seen].count(b"ack-now-1") == 1, "acknowledged: not again"
        new_link.puback(redelivered)
