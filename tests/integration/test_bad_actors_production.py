"""The bad-actors scenario on the production broker (deploy/mosquitto/production.conf and its ACL,
as shipped), against the whole service in certificates mode.

The simulator's hubs connect to the device listener with the certificates registration hands
out; the service reads them on the service listener as `telecare.ingest`. What only the broker
can stop must be stopped there: a hub's alarm published on its neighbour's topic is dropped
(the backend never stores it), and a client with a certificate it made itself never gets in.
Everything else the backend must refuse is in its quarantine, and the ground-truth check is clean.
"""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telecare.api.tokens import Role, create_token
from telecare.core.mqtt_url import parse_mqtt_url
from telecare.core.settings import Settings
from telecare.devices import ca_setup
from telecare.service import Service
from telecare.simulators.api_client import Api
from telecare.simulators.certificates import beside
from telecare.simulators.run import RunOptions, run_scenario
from telecare.simulators.scenario import Scenario, load_scenario
from telecare.simulators.truth.check import check_report
from telecare.simulators.truth.expect import Tolerance
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database

TIME_SCALE = 6  # as tests/integration/test_simulator_scenarios.py plays it: about 20 s of play
TOLERANCE = Tolerance(transport_s=2.0)  # the machine is shared with other tests and benchmarks
RUN_DEADLINE_S = 90


@pytest.fixture
def production_broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(production=True) as running:
        yield running


@pytest.fixture
def own_database() -> Iterator[str]:
    url = create_database(ADMIN_URL)
    yield url
    drop_database(ADMIN_URL, url)


def _settings(broker: PrivateBroker, database_url: str, scenario: Scenario) -> Settings:
    """The backend as `telecare ca init` prints it: the service listener as telecare.ingest."""
    ca = broker.ca
    assert ca is not None
    cert_file, key_file = ca.services[ca_setup.INGEST]
    return Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        mqtt_ca_file=str(ca.broker_ca_cert),
        mqtt_cert_file=str(cert_file),
        mqtt_key_file=str(key_file),
        mqtt_client_id=f"bad-actors-{uuid.uuid4().hex[:8]}",
        api_port=0,
        heartbeat_flush_ms=50,
        broker_credentials="certificates",
        device_ca_cert_file=str(ca.device_ca_cert),
        device_ca_key_file=str(ca.device_ca_key),
        device_crl_file=str(ca.device_crl),  # the file the broker's crlfile names
        broker_reload_command=f"kill -HUP {broker.pid}",
        **scenario.backend_settings(),
    )


async def test_bad_actors_check_clean_on_the_production_broker(
    production_broker: PrivateBroker, own_database: str, tmp_path: Path
) -> None:
    scenario = load_scenario("bad-actors", time_scale=TIME_SCALE)
    ca = production_broker.ca
    assert ca is not None
    lines: list[str] = []
    fleet_file = tmp_path / "fleet.json"
    async with Service(_settings(production_broker, own_database, scenario)) as service:
        await service.wait_ready()
        token = await create_token(service.pool, role=Role.TECHNICIAN, name="bad-actors")
        # The device listener, verified with the broker CA (TELECARE_MQTT_CA_FILE); the hubs
        # connect with the certificate and the broker CA of their registration's bundle.
        devices = parse_mqtt_url(
            f"mqtts://127.0.0.1:{production_broker.port}", ca_file=str(ca.broker_ca_cert)
        )
        report = await asyncio.wait_for(
            run_scenario(
                RunOptions(
                    scenario=scenario,
                    broker=devices,
                    prefix=f"ba{uuid.uuid4().hex[:4]}",
                    api_url=service.api_url,
                    token=token,
                    fleet_file=fleet_file,
                    report_path=tmp_path / "report.json",
                    progress_s=15,
                    tolerance=TOLERANCE,
                    say=lines.append,
                )
            ),
            RUN_DEADLINE_S,
        )
        async with Api(service.api_url, token) as api:
            result = await check_report(report, api, out=lines.append)
            stored = [
                alarm
                async for alarm in api.pages("/alarms", since=None)
                if alarm["device_id"] in report["devices"]
            ]
    print(*lines, sep="\n")

    assert report["broker"]["mode"] == "acl"
    # every hub connected with its certificate, and stayed connected
    assert report["stats"]["connect_failures"] == 0
    assert report["stats"]["reconnects"] == 0
    _assert_certificates_kept(fleet_file)

    spoofed = report["spoofed"]
    assert len(spoofed) == 2  # two hubs each published one alarm on their neighbour's topic
    assert all(spoof["dropped"] for spoof in spoofed)
    spoof_ids = {spoof["msg_id"] for spoof in spoofed}
    assert [a for a in stored if a["msg_id"] in spoof_ids] == []

    intruders = report["intruders"]
    assert len(intruders) == 2
    assert all(i["credential"] == "self-signed certificate" for i in intruders)
    assert not any(i["accepted"] for i in intruders), intruders

    assert result.misses == []
    assert result.false == []
    assert result.matched > 0  # the quarantined bad messages and the heartbeats' alerts


def _assert_certificates_kept(fleet_file: Path) -> None:
    """Beside the fleet file, as its passwords are: a 0700 folder, keys 0600."""
    folder = beside(fleet_file)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    devices: list[dict[str, Any]] = json.loads(fleet_file.read_text())["devices"]
    for device in devices:
        assert device["password"] is None
        key = Path(device["key_file"])
        assert key.parent == folder
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert Path(device["cert_file"]).is_file()
        assert device["ca_file"] == str(folder / "broker-ca.pem")
