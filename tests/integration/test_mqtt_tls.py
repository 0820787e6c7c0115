"""`mqtts://` verifies the broker: its certificate must chain to TELECARE_MQTT_CA_FILE and name
the host of the URL. A private Mosquitto with a TLS listener and certificates made here."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from telecare.api.tokens import Role
from telecare.core.mqtt_url import parse_mqtt_url
from telecare.core.settings import Settings
from telecare.mqtt.client import MqttError, connect
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.support import Devices, api_client, heartbeat, topic, wait_for
from tests.tls import TlsFiles, make_certificates

# paho does not close its socket when the TLS handshake fails; the garbage collector does, with
# a ResourceWarning. Expected in the tests that make handshakes fail, collected before they end.
refused_handshakes = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certificates(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def tls_broker(certificates: TlsFiles) -> Iterator[PrivateBroker]:
    with PrivateBroker(tls=certificates) as broker:
        yield broker


async def test_the_ingest_takes_telemetry_over_a_verified_tls_connection(
    settings: Settings, tls_broker: PrivateBroker, certificates: TlsFiles
) -> None:
    secure = settings.model_copy(
        update={"mqtt_url": tls_broker.tls_url(), "mqtt_ca_file": str(certificates.ca_cert)}
    )
    async with Service(secure) as service:
        await service.wait_ready()
        async with await api_client(service, Role.TECHNICIAN) as technician:
            device_id = (await Devices(technician).register())["device_id"]
            device = secure.broker()  # a device trusting the same CA
            async with aiomqtt.Client(
                device.host, device.port, tls_context=device.tls_context()
            ) as hub:
                await hub.publish(topic(device_id, "heartbeat"), json.dumps(heartbeat()), qos=1)

            async def online() -> bool:
                body = (await technician.get(f"/devices/{device_id}")).json()
                return bool(body["status"] == "online")

            await wait_for(online, what="a heartbeat over TLS stored")
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{service.api_url}/healthz")).json()
        assert health["checks"]["broker"] is True


@pytest.mark.parametrize(
    ("host", "trusted", "why"),
    [
        ("localhost", "other_ca_cert", "certificate verify failed"),  # signed by a stranger
        ("127.0.0.1", "ca_cert", "IP address mismatch"),  # the certificate names localhost
    ],
)
@refused_handshakes
async def test_a_broker_that_cannot_prove_who_it_is_is_refused(
    tls_broker: PrivateBroker, certificates: TlsFiles, host: str, trusted: str, why: str
) -> None:
    broker = parse_mqtt_url(tls_broker.tls_url(host), ca_file=str(getattr(certificates, trusted)))
    with pytest.raises(MqttError, match=why):
        await connect(broker, client_id="tls-test")
    gc.collect()


@refused_handshakes
async def test_the_ingest_keeps_refusing_a_broker_signed_by_another_ca(
    settings: Settings,
    tls_broker: PrivateBroker,
    certificates: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="telecare.mqtt.persistent_session")
    wrong = settings.model_copy(
        update={
            "mqtt_url": tls_broker.tls_url(),
            "mqtt_ca_file": str(certificates.other_ca_cert),
        }
    )
    async with Service(wrong, {"ingest", "api"}) as service:

        async def refused() -> bool:
            return any("certificate verify failed" in r.getMessage() for r in caplog.records)

        await wait_for(refused, what="the connection refused for its certificate")
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{service.api_url}/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["broker"] is False
    gc.collect()
