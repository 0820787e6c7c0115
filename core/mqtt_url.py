"""Turn TELECARE_MQTT_URL into the arguments an MQTT client needs."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None

    def client(self, *, identifier: str, clean_session: bool) -> aiomqtt.Client:
        """An (unconnected) client for this broker; connect with `async with`."""
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            tls_context=self.tls_context(),
            identifier=identifier,
            clean_session=clean_session,
            keepalive=30,
        )


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse `mqtt://[user:pass@]host:port` (or `mqtts://`)."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )
