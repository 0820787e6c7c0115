"""Before measuring: that the benchmark's broker enforces identity, so that its figures are those
of a broker doing the work of checking (and not of a listener left open by a mistake).

- a device's certificate gets a session on the device listener (and the TLS version it got);
- a revoked device's certificate (in the CRL) is refused;
- a device's certificate is refused on the service listener, a service's on the device listener;
- a device's heartbeat on another device's topic is dropped, its own delivered (a subscriber
  with the ingest's identity reads both topics).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt import packets
from telecare.mqtt.client import connect
from telecare.protocol.messages import MessageKind, topic_for


@dataclass(frozen=True)
class Checked:
    what: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.got.startswith(self.expected)


def _session(address: BrokerAddress, client_id: str) -> str:
    """'accepted (TLSv1.3)', or how the broker refused the TLS handshake or the CONNECT."""
    context = address.tls_context()
    assert context is not None
    try:
        with (
            socket.create_connection((address.host, address.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=address.host) as tls,
        ):
            version = tls.version()
            tls.sendall(
                packets.connect(client_id, username=None, password=None, will=None, keepalive_s=30)
            )
            answer = tls.recv(4)  # TLS 1.3: a refused certificate is told after the handshake
            if len(answer) == 4 and answer[0] == packets.CONNACK:
                return (
                    f"accepted ({version})" if answer[3] == 0 else f"refused: CONNACK {answer[3]}"
                )
            return "refused: connection closed"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc.__class__.__name__}: {getattr(exc, 'reason', None) or exc}"


async def _foreign_topic(
    service: BrokerAddress, device: BrokerAddress, device_id: str, other_id: str
) -> str:
    heard: list[str] = []
    own_heard = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        heard.append(topic)
        if topic == topic_for(device_id, MessageKind.HEARTBEAT):
            own_heard.set()

    reader = await connect(service, client_id="bench-identity-check", on_message=on_message)
    try:
        await reader.subscribe(topic_for("+", MessageKind.HEARTBEAT), 1)
        writer = await connect(device, client_id=device_id)
        try:
            for target in (other_id, device_id):  # QoS 1: PUBACKed even when dropped
                await writer.publish(topic_for(target, MessageKind.HEARTBEAT), b"{}", qos=1)
        finally:
            await writer.disconnect()
        with contextlib.suppress(TimeoutError):  # the other device's, if delivered, came first
            await asyncio.wait_for(own_heard.wait(), 5)
    finally:
        await reader.disconnect()
    own, other = (topic_for(d, MessageKind.HEARTBEAT) in heard for d in (device_id, other_id))
    return f"{'own delivered' if own else 'own lost'}, {'other delivered' if other else 'dropped'}"


async def check_identity(
    device: BrokerAddress,
    revoked: BrokerAddress,
    service: BrokerAddress,
    device_ids: tuple[str, str],
) -> list[Checked]:
    """The checks of the module's docstring, on a broker with no other client yet."""
    device_id, other_id = device_ids
    on_service = BrokerAddress(
        device.host, service.port, None, None, True, device.ca_file, device.cert_file
    )
    on_devices = BrokerAddress(
        service.host, device.port, None, None, True, service.ca_file, *_pair(service)
    )
    sessions = [
        ("device certificate, device listener", "accepted", device, device_id),
        ("revoked device certificate (CRL)", "refused", revoked, "bench-revoked"),
        ("device certificate, service listener", "refused", on_service, device_id),
        ("service certificate, device listener", "refused", on_devices, "telecare.ingest"),
    ]
    checked = [
        Checked(what, expected, await asyncio.to_thread(_session, address, client_id))
        for what, expected, address, client_id in sessions
    ]
    got = await _foreign_topic(service, device, device_id, other_id)
    checked.append(Checked("heartbeat on another device's topic", "own delivered, dropped", got))
    return checked


def _pair(address: BrokerAddress) -> tuple[str | None, str | None]:
    return address.cert_file, address.key_file
