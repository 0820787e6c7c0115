"""Turn TELECARE_MQTT_URL into the arguments an MQTT client needs.

`mqtts://` always verifies the broker: its certificate must chain to a trusted CA (the system's
store, or only `ca_file` when one is given: TELECARE_MQTT_CA_FILE) and name the URL's host.
With `cert_file` and `key_file` (TELECARE_MQTT_CERT_FILE, TELECARE_MQTT_KEY_FILE) the client
proves who it is with a certificate: a production broker (deploy/mosquitto/production.conf)
takes the certificate's common name as the username its ACL is written for.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        # create_default_context already requires a valid chain and the host name; said again
        # here because a broker that is not checked is a broker anyone can pretend to be.
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def parse_mqtt_url(
    url: str,
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> BrokerAddress:
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
        cert_file=cert_file,
        key_file=key_file,
    )
