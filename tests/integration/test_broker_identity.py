"""The production broker (deploy/mosquitto/production.conf and production.acl, as shipped) on a
real Mosquitto: a device certificate is the device's identity, confined to its own topics, and
one revoked is cut off while the rest of the fleet carries on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telecare.core.mqtt_url import BrokerAddress
from telecare.devices import ca_setup
from telecare.devices.broker_revocation import (
    BrokerReloadFailed,
    DisconnectFailed,
    disconnect_device,
    reload_broker,
)
from telecare.devices.device_ca import DeviceCA, IssuedCertificate, write_atomically
from telecare.mqtt.client import MqttConnection, MqttError, PublishRefused, connect
from tests.brokers import PrivateBroker, free_port

DEADLINE_S = 5.0
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(production=True) as running:
        yield running


@pytest.fixture(scope="module")
def device_ca(broker: PrivateBroker) -> DeviceCA:
    assert broker.ca is not None
    return DeviceCA.load(broker.ca.device_ca_cert, broker.ca.device_ca_key)


class Certificates:
    """Device certificates written to files, and the address to connect with each."""

    def __init__(self, broker: PrivateBroker, ca: DeviceCA, folder: Path) -> None:
        self.broker = broker
        self.ca = ca
        self.folder = folder

    def issue(
        self, prefix: str, *, ca: DeviceCA | None = None, now: datetime | None = None
    ) -> tuple[IssuedCertificate, BrokerAddress]:
        device_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        issued = (ca or self.ca).issue(
            device_id, csr_pem=None, days=2, now=now or datetime.now(UTC)
        )
        assert issued.private_key_pem is not None
        cert, key = self.folder / f"{device_id}.pem", self.folder / f"{device_id}.key"
        cert.write_text(issued.certificate_pem)
        write_atomically(key, issued.private_key_pem, 0o600)
        return issued, self.broker.device_address(cert, key)

    def device(self, prefix: str) -> tuple[str, BrokerAddress]:
        issued, address = self.issue(prefix)
        return issued.device_id, address


@pytest.fixture
def certificates(broker: PrivateBroker, device_ca: DeviceCA, tmp_path: Path) -> Certificates:
    return Certificates(broker, device_ca, tmp_path)


class Inbox:
    """What one connection received, in order, with a way to wait for a message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._arrived = asyncio.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self._arrived.set()

    async def until(self, topic: str, payload: bytes) -> None:
        """Wait for (topic, payload); fail after the deadline."""
        async with asyncio.timeout(DEADLINE_S):
            while (topic, payload) not in self.messages:
                self._arrived.clear()
                await self._arrived.wait()

    def on(self, topic: str) -> list[bytes]:
        return [payload for received, payload in self.messages if received == topic]


@contextlib.asynccontextmanager
async def connected(
    address: BrokerAddress, client_id: str | None = None, inbox: Inbox | None = None, **options
) -> AsyncIterator[MqttConnection]:
    connection = await connect(
        address,
        client_id=client_id or f"test-{uuid.uuid4().hex[:12]}",
        on_message=inbox,
        timeout_s=DEADLINE_S,
        **options,
    )
    try:
        yield connection
    finally:
        if connection.is_open:
            await connection.disconnect()
        else:
            connection.abort()


@contextlib.asynccontextmanager
async def ingest(broker: PrivateBroker, name: str = ca_setup.INGEST) -> AsyncIterator[Inbox]:
    """A service subscribed to all telemetry, as the ingest is (`telecare/v1/#`)."""
    inbox = Inbox()
    async with connected(broker.service_address(name), inbox=inbox) as connection:
        await connection.subscribe("telecare/v1/#", qos=1)
        yield inbox


def topic(device_id: str, kind: str) -> str:
    return f"telecare/v1/{device_id}/{kind}"


async def test_a_device_publishes_on_its_own_topics_to_the_ingest(
    broker: PrivateBroker, certificates: Certificates
) -> None:
    device_id, address = certificates.device("pendant")
    async with ingest(broker) as received, ingest(broker, ca_setup.API) as api_received:
        # whatever client id the device sends (the broker replaces it with the device id)
        async with connected(address, client_id="anything") as device:
            for kind in ("heartbeat", "alarm", "status"):
                await device.publish(topic(device_id, kind), kind.encode(), qos=1)
        for kind in ("heartbeat", "alarm", "status"):
            await received.until(topic(device_id, kind), kind.encode())
        assert api_received.messages == []  # the API's identity reads no telemetry


@pytest.mark.parametrize("kind", ["heartbeat", "alarm", "status"])
async def test_a_device_cannot_publish_as_its_neighbour(
    broker: PrivateBroker, certificates: Certificates, kind: str
) -> None:
    device_id, address = certificates.device("pendant")
    neighbour, _ = certificates.device("neighbour")
    async with ingest(broker) as received, connected(address) as device:
        await device.publish(topic(neighbour, kind), b"forged", qos=1)  # 3.1.1: PUBACKed anyway
        await device.publish(topic(device_id, kind), b"own", qos=1)
        # the broker keeps one sender's order: past the own message, the forged one never comes
        await received.until(topic(device_id, kind), b"own")
        assert received.on(topic(neighbour, kind)) == []


async def test_an_mqtt5_device_is_told_its_forged_publish_was_refused(
    broker: PrivateBroker, certificates: Certificates
) -> None:
    device_id, address = certificates.device("hub")
    neighbour, _ = certificates.device("neighbour")
    async with connected(address, mqtt5=True) as device:
        with pytest.raises(PublishRefused) as refused:
            await device.publish(topic(neighbour, "alarm"), b"forged", qos=1)
        assert refused.value.code == NOT_AUTHORIZED
        await device.publish(topic(device_id, "alarm"), b"own", qos=1)


async def test_a_device_reads_its_own_acks_and_not_its_neighbours(
    broker: PrivateBroker, certificates: Certificates
) -> None:
    device_id, address = certificates.device("pendant")
    neighbour, _ = certificates.device("neighbour")
    inbox = Inbox()
    async with (
        connected(broker.service_address()) as backend,
        connected(address, inbox=inbox) as device,
    ):
        await device.subscribe("telecare/v1/+/ack", qos=1)
        await backend.publish(topic(neighbour, "ack"), b"theirs", qos=1)
        await backend.publish(topic(device_id, "ack"), b"mine", qos=1)
        await inbox.until(topic(device_id, "ack"), b"mine")
        assert inbox.on(topic(neighbour, "ack")) == []


async def test_the_ingest_identity_publishes_acks_and_the_feed_canary(
    broker: PrivateBroker,
) -> None:
    canary = f"telecare/v1/_canary-{uuid.uuid4().hex[:12]}/ack"
    async with ingest(broker) as received, connected(broker.service_address()) as backend:
        await backend.publish(canary, b"canary", qos=1)
        await received.until(canary, b"canary")


def _refusal(address: BrokerAddress) -> str:
    """Why the broker refuses a connection with this address, after checking that MQTT over it
    fails. The reason is read from a TLS 1.2 handshake: with 1.3 the server judges the client's
    certificate after the client thinks the handshake done, and its alert may be lost to the
    connection's reset."""

    async def mqtt_refused() -> bool:
        try:
            async with connected(address):
                return False
        except MqttError:
            return True

    assert asyncio.run(mqtt_refused()), "connected"
    context = address.tls_context()
    assert context is not None
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return _handshake(address.port, context).lower()


def _handshake(port: int, context: ssl.SSLContext) -> str:
    """The TLS version agreed with the listener on `port`, or the error that refused it."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return str(tls.version())
    except ssl.SSLError as exc:
        return str(exc)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("expired", "certificate expired"),
        ("foreign CA", "unknown ca"),
        ("device on the service listener", "unknown ca"),
        ("service on the device listener", "unknown ca"),
        ("no certificate", "handshake failure"),
    ],
)
def test_certificates_the_broker_must_not_accept(
    broker: PrivateBroker, certificates: Certificates, tmp_path: Path, case: str, why: str
) -> None:
    if case == "expired":
        _, address = certificates.issue("expired", now=datetime.now(UTC) - timedelta(days=3))
    elif case == "foreign CA":
        foreign = ca_setup.init(tmp_path / "foreign", days=2, now=datetime.now(UTC))
        stranger = DeviceCA.load(foreign.device_ca_cert, foreign.device_ca_key)
        _, address = certificates.issue("stranger", ca=stranger)
    elif case == "device on the service listener":
        _, device = certificates.issue("pendant")
        address = dataclasses.replace(device, port=broker.service_port)
    elif case == "service on the device listener":
        address = dataclasses.replace(broker.service_address(), port=broker.port)
    else:
        _, device = certificates.issue("pendant")
        address = dataclasses.replace(device, cert_file=None, key_file=None)
    assert why in _refusal(address).lower()


async def test_a_device_cannot_take_over_another_devices_client_id(
    broker: PrivateBroker, certificates: Certificates
) -> None:
    victim_id, victim_address = certificates.device("victim")
    _, attacker_address = certificates.device("attacker")
    async with (
        ingest(broker) as received,
        connected(victim_address, client_id=victim_id) as victim,
        connected(attacker_address, client_id=victim_id) as attacker,
    ):
        await attacker.publish(topic(victim_id, "alarm"), b"forged", qos=1)
        # the victim is still connected: what it publishes after the attacker came arrives
        await victim.publish(topic(victim_id, "heartbeat"), b"still here", qos=1)
        await received.until(topic(victim_id, "heartbeat"), b"still here")
        assert victim.is_open and attacker.is_open
        assert received.on(topic(victim_id, "alarm")) == []


# Python deprecates choosing the old versions this test must offer.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_2_and_1_3_are_accepted_and_older_versions_refused(
    broker: PrivateBroker, certificates: Certificates
) -> None:
    _, address = certificates.issue("pendant")
    for version, agreed in (
        (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
        (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
    ):
        context = address.tls_context()
        assert context is not None
        context.minimum_version = context.maximum_version = version
        assert _handshake(broker.port, context) == agreed
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        context = address.tls_context()
        assert context is not None
        context.minimum_version = context.maximum_version = old
        context.set_ciphers("DEFAULT@SECLEVEL=0")  # so that this client at least offers it
        # the broker's own refusal (an alert), not this client declining to offer it
        assert "alert protocol version" in _handshake(broker.port, context).lower()


async def test_a_revoked_device_is_cut_off_and_the_rest_carry_on(
    broker: PrivateBroker, certificates: Certificates, device_ca: DeviceCA
) -> None:
    assert broker.ca is not None
    revoked, revoked_address = certificates.issue("revoked")
    kept_id, kept_address = certificates.device("kept")
    async with (
        ingest(broker) as received,
        connected(revoked_address) as device,
        connected(kept_address) as neighbour,
    ):
        now = datetime.now(UTC)
        crl = device_ca.revocation_list([(revoked.serial, now)], now=now, valid_for=timedelta(7))
        started = time.monotonic()
        write_atomically(broker.ca.device_crl, crl)
        await reload_broker(f"kill -HUP {broker.pid}", DEADLINE_S)
        await disconnect_device(broker.service_address(ca_setup.API), revoked.device_id, 5)
        async with asyncio.timeout(DEADLINE_S):
            await device.closed
        cut_off_s = time.monotonic() - started
        # the rest of the fleet stays connected and keeps publishing
        await neighbour.publish(topic(kept_id, "heartbeat"), b"still here", qos=1)
        await received.until(topic(kept_id, "heartbeat"), b"still here")
        assert neighbour.is_open
        # and the revoked certificate cannot come back
        assert "certificate revoked" in await asyncio.to_thread(_refusal, revoked_address)
    print(f"revoked device cut off in {cut_off_s * 1000:.0f} ms")


async def test_a_reload_command_that_fails_or_hangs_says_so() -> None:
    with pytest.raises(BrokerReloadFailed, match=r"exited with 3: .*no such broker"):
        await reload_broker("echo no such broker; exit 3", DEADLINE_S)
    started = time.monotonic()
    with pytest.raises(BrokerReloadFailed, match=r"did not finish within 0\.2 s"):
        await reload_broker("sleep 30 & sleep 30", 0.2)
    assert time.monotonic() - started < 2
    await reload_broker(None, DEADLINE_S)  # nothing to run: nothing to fail


async def test_disconnecting_without_a_broker_says_so(broker: PrivateBroker) -> None:
    address = dataclasses.replace(broker.service_address(), port=free_port())
    with pytest.raises(DisconnectFailed, match="pendant-0001"):
        await disconnect_device(address, "pendant-0001", DEADLINE_S)
