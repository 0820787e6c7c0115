"""Turn TELECARE_MQTT_URL into the arguments an MQTT client needs.

`mqtts://` always verifies the broker: its certificate must chain to a trusted CA (the system's
store, or only `ca_file` when one is given: TELECARE_MQTT_CA_FILE) and name the URL's host.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5 session expiry interval: the session outlives connections


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        # create_default_context already requires a valid chain and the host name; said again
        # here because a broker that is not checked is a broker anyone can pretend to be.
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def client(
        self,
        *,
        identifier: str,
        clean_session: bool,
        queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
        receive_maximum: int | None = None,
    ) -> aiomqtt.Client:
        """An (unconnected) client for this broker; connect with `async with`.

        `receive_maximum`: at most this many QoS 1 messages un-PUBACKed at once, asked of the
        broker in an MQTT 5 CONNECT (it keeps to the smaller of this and its own
        `max_inflight_messages`); a session that is not clean then never expires."""
        common: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "tls_context": self.tls_context(),
            "identifier": identifier,
            "keepalive": 30,
            "queue_type": queue_type,
        }
        if receive_maximum is None:
            return aiomqtt.Client(self.host, self.port, clean_session=clean_session, **common)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = receive_maximum
        if not clean_session:
            properties.SessionExpiryInterval = _NEVER_EXPIRES
        return aiomqtt.Client(
            self.host,
            self.port,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_session,  # never "clean on first connect only": the session lasts
            properties=properties,
            **common,
        )


def parse_mqtt_url(url: str, *, ca_file: str | None = None) -> BrokerAddress:
    """Parse `mqtt://[user:pass@]host:port` (or `mqtts://`)."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        ca_file=ca_file,
    )
