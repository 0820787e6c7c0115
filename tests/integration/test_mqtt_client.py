"""The lean MQTT client (telecare.mqtt.client) and its lasting subscription against real
Mosquitto: a frozen broker is noticed, a refused subscription is a failed connection, a kept
session is reported and re-subscribed when lost, QoS 2 is refused, packet ids stay unique
while in flight, and a refused CONNECT says why.

Tests that freeze or restart a broker start a private one of their own (tests/brokers.py);
the others share the session's private broker with unique client ids and topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import uvloop

from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.mqtt import packets
from telecare.mqtt.client import (
    ConnectRefused,
    MqttError,
    ProtocolViolation,
    SubscribeRefused,
    connect,
)
from telecare.mqtt.subscription import Subscription
from tests.brokers import BACKEND_USER, PrivateBroker
from tests.support import Mqtt, wait_for

KEEPALIVE_S = 2
NOTICED_WITHIN_S = 1.5 * KEEPALIVE_S


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def frozen(broker: PrivateBroker) -> Iterator[float]:
    """SIGSTOP the broker for the block (its kernel still accepts and acknowledges TCP, the
    process answers nothing); yield the monotonic time it froze; SIGCONT it after."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(broker.pid, signal.SIGCONT)


class Received:
    """Messages handed to on_message, and a wait for one of them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    async def wait(self, payload: bytes, within_s: float = 10) -> None:
        async def arrived() -> bool:
            return any(p == payload for _, p in self.messages)

        await wait_for(arrived, within_s=within_s, what=f"message {payload!r}")


async def publish(broker: BrokerAddress, topic: str, payload: bytes) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK."""
    conn = await connect(broker, client_id=unique("pub"))
    try:
        await conn.publish(topic, payload)
    finally:
        await conn.disconnect()


async def connected(subscription: Subscription, within_s: float = 15) -> None:
    async with asyncio.timeout(within_s):
        await subscription.connected.wait()


@contextlib.asynccontextmanager
async def running(subscription: Subscription) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(subscription.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- a broker that stops answering ---


async def _frozen_broker_scenario(broker: PrivateBroker) -> None:
    """A broker frozen with SIGSTOP is noticed within 1.5 keep-alive periods: the connection
    closes with an error that names the cause, the subscription stops saying it is connected,
    and once the broker is resumed it reconnects and messages flow again."""
    received = Received()
    subscription = Subscription(
        broker.address,
        name="frozen",
        identifier=unique("frozen-sub"),
        filters=[("frozen/#", 1)],
        on_message=received,
        clean_session=False,
        keepalive_s=KEEPALIVE_S,
    )
    async with running(subscription):
        await connected(subscription)
        conn = await connect(broker.address, client_id=unique("frozen"), keepalive_s=KEEPALIVE_S)
        # Idle but answering: the liveness checks of 1.5 periods close nothing.
        await asyncio.sleep(NOTICED_WITHIN_S)
        assert conn.is_open and subscription.connected.is_set()
        with frozen(broker) as froze_at:
            async with asyncio.timeout(NOTICED_WITHIN_S + 1):
                await asyncio.shield(conn.closed)
            noticed_s = time.monotonic() - froze_at
            assert noticed_s <= NOTICED_WITHIN_S, f"noticed after {noticed_s:.2f} s"
            assert conn.error is not None and "PINGRESP" in str(conn.error)

            async def subscription_down() -> bool:
                return not subscription.connected.is_set()

            await wait_for(
                subscription_down,
                within_s=max(0.1, froze_at + NOTICED_WITHIN_S - time.monotonic()),
                what="the subscription to notice the frozen broker",
            )
            assert subscription.failures >= 1
            assert subscription.last_error is not None and "PINGRESP" in subscription.last_error
        await connected(subscription)
        await publish(broker.address, "frozen/after", b"after the thaw")
        await received.wait(b"after the thaw")


@pytest.mark.faults
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_frozen_broker_is_noticed_within_one_and_a_half_keepalive_periods(loop: str) -> None:
    """On asyncio's own event loop and on uvloop (which `telecare run` uses): their timers and
    reads interleave differently."""
    with PrivateBroker() as broker:
        if loop == "uvloop":
            uvloop.run(_frozen_broker_scenario(broker))
        else:
            asyncio.run(_frozen_broker_scenario(broker))


async def test_the_kernel_is_asked_to_notice_a_vanished_peer_too(mqtt: Mqtt) -> None:
    """A broker whose host is gone answers nothing, not even at the TCP level; TCP keep-alive
    probes and TCP_USER_TIMEOUT close such a connection within 1.5 keep-alive periods even
    when no PINGREQ is due. (Dropping a peer's packets needs the network configured, which a
    test here does not do: this checks what the kernel is asked.)"""
    conn = await connect(mqtt.broker, client_id=unique("tcp"), keepalive_s=10)
    try:
        sock = conn._transport.get_extra_info("socket") if conn._transport else None
        assert sock is not None
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        assert idle + interval * count <= 15
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 15_000
    finally:
        await conn.disconnect()


# --- a subscription the broker refuses ---


@pytest.fixture(scope="module")
def deaf_account() -> Iterator[tuple[PrivateBroker, str, str]]:
    """A broker with the shipped dynamic-security configuration and an account that may connect
    but subscribe to nothing: Mosquitto answers its SUBSCRIBE with SUBACK 0x80."""
    with PrivateBroker(dynsec=True) as broker:
        username, password = unique("deaf"), uuid.uuid4().hex
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
        yield broker, username, password


async def test_a_refused_subscribe_raises(deaf_account: tuple[PrivateBroker, str, str]) -> None:
    broker, username, password = deaf_account
    address = parse_mqtt_url(f"mqtt://127.0.0.1:{broker.port}")
    conn = await connect(address, client_id=username, username=username, password=password)
    try:
        with pytest.raises(SubscribeRefused, match="0x80") as refused:
            await conn.subscribe("telecare/v1/#", 1)
        assert refused.value.topic_filter == "telecare/v1/#"
    finally:
        await conn.disconnect()


async def test_a_refused_subscription_is_a_failed_connection_retried_counted_and_logged(
    deaf_account: tuple[PrivateBroker, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    broker, username, password = deaf_account
    address = parse_mqtt_url(f"mqtt://{username}:{password}@127.0.0.1:{broker.port}")
    subscription = Subscription(
        address,
        name="deaf",
        identifier=username,
        filters=[("telecare/v1/#", 1)],
        on_message=Received(),
        clean_session=False,
    )
    caplog.set_level(logging.WARNING, logger="telecare.mqtt.subscription")
    async with running(subscription):

        async def refused_twice() -> bool:
            return subscription.refused_subscriptions >= 2

        await wait_for(refused_twice, within_s=20, what="two refused subscriptions, retried")
        assert not subscription.connected.is_set(), "never reported as connected"
    assert subscription.failures >= 2
    assert subscription.last_error is not None and "refused SUBSCRIBE" in subscription.last_error
    assert any(
        "session=deaf" in record.getMessage() and "SUBACK 0x80" in record.getMessage()
        for record in caplog.records
    )


# --- session present ---


async def test_session_present_says_whether_the_broker_kept_the_session(mqtt: Mqtt) -> None:
    client_id = unique("persistent")
    first = await connect(mqtt.broker, client_id=client_id, clean_session=False)
    assert first.session_present is False  # a session never seen before
    await first.subscribe(f"{client_id}/#", 1)
    await first.disconnect()
    await publish(mqtt.broker, f"{client_id}/held", b"held while away")
    received = Received()
    second = await connect(
        mqtt.broker, client_id=client_id, clean_session=False, on_message=received
    )
    try:
        assert second.session_present is True
        await received.wait(b"held while away")  # the kept subscription, not a new one
    finally:
        await second.disconnect()
    clean = await connect(mqtt.broker, client_id=client_id, clean_session=True)
    assert clean.session_present is False
    await clean.disconnect()


@pytest.mark.faults
@pytest.mark.parametrize("persistence", [False, True], ids=["session-lost", "session-kept"])
async def test_a_subscription_outlives_a_broker_restart_whether_or_not_the_session_was_kept(
    persistence: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker restarted without persistence has forgotten the session: the subscription sees
    session_present False and subscribes again. One that kept it still holds the subscription:
    it is not sent again. Either way messages published after the restart arrive."""
    caplog.set_level(logging.INFO, logger="telecare.mqtt.subscription")
    received = Received()
    with PrivateBroker(persistence=persistence) as broker:
        subscription = Subscription(
            broker.address,
            name="restart",
            identifier=unique("restart-sub"),
            filters=[("restart/#", 1)],
            on_message=received,
            clean_session=False,
            keepalive_s=KEEPALIVE_S,
        )
        async with running(subscription):
            await connected(subscription)
            await publish(broker.address, "restart/before", b"before")
            await received.wait(b"before")
            caplog.clear()
            await asyncio.to_thread(broker.restart)

            async def reconnected() -> bool:
                return subscription.connected.is_set() and any(
                    "mqtt connected session=restart" in r.getMessage() for r in caplog.records
                )

            await wait_for(reconnected, within_s=20, what="the subscription back after restart")
            [line] = [
                r.getMessage()
                for r in caplog.records
                if "mqtt connected session=restart" in r.getMessage()
            ]
            assert f"session_present={persistence}" in line
            await publish(broker.address, "restart/after", b"after")
            await received.wait(b"after")


# --- QoS 2 refused ---


async def test_qos_2_is_never_asked_for_and_an_incoming_qos_2_publish_closes_the_connection(
    mqtt: Mqtt,
) -> None:
    received = Received()
    conn = await connect(mqtt.broker, client_id=unique("qos2"), on_message=received)
    topic = f"{unique('qos2')}/x"
    with pytest.raises(ValueError, match="QoS 0 or 1"):
        await conn.subscribe(topic, qos=2)
    with pytest.raises(ValueError, match="QoS 0 or 1"):
        conn.publish(topic, b"never", qos=2)
    # A QoS 2 subscription written by hand, as a broker that ignored the requested QoS would
    # deliver: Mosquitto then sends QoS 2 PUBLISHes to this client.
    conn.write(packets.subscribe(65000, topic, 2))
    await conn.subscribe(f"{topic}/ordered-after", 1)  # SUBACKs come in order
    await mqtt.publish(topic, b"exactly once, please", qos=2)
    async with asyncio.timeout(10):
        await asyncio.shield(conn.closed)
    assert isinstance(conn.error, ProtocolViolation)
    assert "QoS 2" in str(conn.error)
    assert received.messages == [], "a QoS 2 message is neither handed over nor acknowledged"


# --- packet ids ---


@pytest.mark.faults
async def test_packet_ids_are_unique_while_in_flight_and_all_in_flight_fails_clearly() -> None:
    """With the broker frozen nothing is acknowledged: 65,535 QoS 1 PUBLISHes take every packet
    id once, the next one fails clearly instead of reusing an id, and once the broker resumes
    each PUBLISH is acknowledged exactly once."""
    with PrivateBroker() as broker:
        conn = await connect(broker.address, client_id=unique("ids"), keepalive_s=600)
        try:
            with frozen(broker):
                acked = [conn.publish("ids/x", b"%d" % n) for n in range(packets.MAX_PACKET_ID)]
                with pytest.raises(MqttError, match="packet ids wait for an acknowledgement"):
                    conn.publish("ids/x", b"one too many")
            async with asyncio.timeout(60):
                await asyncio.gather(*acked)
            assert conn.acks_received == packets.MAX_PACKET_ID
            await conn.publish("ids/x", b"ids free again")
        finally:
            await conn.disconnect()


# --- CONNACK codes ---


async def test_a_refused_connect_says_why(deaf_account: tuple[PrivateBroker, str, str]) -> None:
    broker, username, _ = deaf_account
    address = parse_mqtt_url(f"mqtt://127.0.0.1:{broker.port}")
    with pytest.raises(ConnectRefused, match="not authorised") as refused:
        await connect(address, client_id=unique("stranger"), username=username, password="wrong")
    assert refused.value.code == 5
    with pytest.raises(ConnectRefused, match="not authorised"):
        await connect(address, client_id=unique("anonymous"))


async def test_a_shared_subscription_is_sent_again_after_a_broker_restart() -> None:
    """Mosquitto 2.0 restores a persistent session from its persistence file after a restart
    (session present) but not the session's shared subscriptions: the ingest's telemetry
    connections (`$share/...`) must subscribe again or stay connected and deaf."""
    with PrivateBroker(persistence=True) as broker:
        received = Received()
        subscription = Subscription(
            broker.address,
            name="shared",
            identifier=unique("shared-sub"),
            filters=[("$share/telecare/shared/#", 1)],
            on_message=received,
            clean_session=False,
        )
        async with running(subscription):
            await connected(subscription)
            await publish(broker.address, "shared/before", b"before")
            await received.wait(b"before")
            await asyncio.to_thread(broker.restart)

            async def reconnected() -> bool:
                conn = subscription.connection
                return conn is not None and conn.session_present

            await wait_for(reconnected, within_s=20, what="the session back, present")
            await publish(broker.address, "shared/after", b"after the restart")
            await received.wait(b"after the restart")
