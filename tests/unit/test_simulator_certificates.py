"""Where the simulator keeps the device certificates registration hands out, and how a hub with
one connects: files and addresses only, no broker."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path
from typing import Any

import pytest

from telecare.core.mqtt_url import parse_mqtt_url
from telecare.simulators.certificates import CertificateFolder, beside, self_signed
from telecare.simulators.hub_parts import HubIdentity
from telecare.simulators.registration import FleetDevice, read_fleet_file, write_fleet_file
from telecare.simulators.scenario import load_scenario
from telecare.simulators.scenario_errors import ScenarioError

DEVICE = FleetDevice("sim-good-0001", "good", "CF10 1EP", "4g")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def bundle(tmp_path: Path) -> dict[str, Any]:
    """A bundle's PEM texts, as POST /devices answers them (self-signed: nothing is verified)."""
    cert, key = self_signed(DEVICE.device_id, tmp_path)
    ca, _ = self_signed("broker-ca", tmp_path)
    return {
        "certificate_pem": cert.read_text(),
        "private_key_pem": key.read_text(),
        "broker_ca_pem": ca.read_text(),
    }


def test_a_temporary_folder_is_private_and_gone_at_the_end(bundle: dict[str, Any]) -> None:
    with CertificateFolder.for_run(None) as folder:
        assert folder.directory is None  # nothing made for a password fleet
        device = folder.keep(DEVICE, bundle)
        directory = folder.directory
        assert directory is not None
        assert mode(directory) == 0o700
        assert device.cert_file and device.key_file and device.ca_file
        assert Path(device.key_file).read_text() == bundle["private_key_pem"]
        assert mode(Path(device.key_file)) == 0o600
        assert Path(device.cert_file).read_text() == bundle["certificate_pem"]
        assert Path(device.ca_file).read_text() == bundle["broker_ca_pem"]
        assert device.password is None
        assert (device.device_id, device.group, device.network) == ("sim-good-0001", "good", "4g")
        # the files are what TLS loads
        ssl.create_default_context().load_cert_chain(device.cert_file, device.key_file)
    assert not directory.exists()


def test_beside_a_fleet_file_they_are_kept_for_attach(
    bundle: dict[str, Any], tmp_path: Path
) -> None:
    fleet_file = tmp_path / "run" / "fleet.json"
    fleet_file.parent.mkdir()
    with CertificateFolder.for_run(fleet_file) as folder:
        device = folder.keep(DEVICE, bundle)
    assert folder.directory == beside(fleet_file) == tmp_path / "run" / "fleet.certs"
    assert mode(beside(fleet_file)) == 0o700
    assert mode(Path(str(device.key_file))) == 0o600
    write_fleet_file(fleet_file, "http://api", [device])
    assert read_fleet_file(fleet_file) == [device]


def test_a_fleet_file_of_passwords_still_reads(tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(
        '{"api_url": "x", "devices": [{"device_id": "sim-good-0001", "group": "good", '
        '"postcode": null, "network": "4g", "password": "pw"}]}'
    )
    [device] = read_fleet_file(fleet_file)
    assert device.password == "pw"
    assert device.cert_file is None


def test_a_bundle_without_its_key_is_refused(bundle: dict[str, Any]) -> None:
    with CertificateFolder.for_run(None) as folder, pytest.raises(ScenarioError, match="key"):
        folder.keep(DEVICE, {**bundle, "private_key_pem": None})


def test_without_a_broker_ca_in_the_bundle_the_runs_own_is_used(bundle: dict[str, Any]) -> None:
    with CertificateFolder.for_run(None) as folder:
        device = folder.keep(DEVICE, {**bundle, "broker_ca_pem": None})
        broker = parse_mqtt_url("mqtts://broker.example:8883", ca_file="/etc/telecare/ca.pem")
        address = identity(device).address(broker)
    assert device.ca_file is None
    assert address.ca_file == "/etc/telecare/ca.pem"


def identity(device: FleetDevice) -> HubIdentity:
    group = load_scenario("bad-actors").groups[0]
    return HubIdentity(
        device.device_id,
        device.password,
        group,
        device.network,
        60,
        cert_file=device.cert_file,
        key_file=device.key_file,
        ca_file=device.ca_file,
    )


def test_a_hub_with_a_certificate_sends_no_username_or_password(
    bundle: dict[str, Any],
) -> None:
    broker = parse_mqtt_url("mqtts://u:p@broker.example:8883", ca_file="/etc/run-ca.pem")
    with CertificateFolder.for_run(None) as folder:
        hub = identity(folder.keep(DEVICE, bundle))
        address = hub.address(broker)
    assert (address.host, address.port, address.tls) == ("broker.example", 8883, True)
    assert (address.username, address.password) == (None, None)
    assert (address.cert_file, address.key_file) == (hub.cert_file, hub.key_file)
    assert address.ca_file == hub.ca_file  # the bundle's broker CA before the run's
    assert hub.username is None
    assert hub.password is None


def test_a_hub_with_a_password_connects_as_before() -> None:
    broker = parse_mqtt_url("mqtt://127.0.0.1:1883")
    hub = identity(FleetDevice("sim-good-0002", "good", None, "wifi", password="pw"))
    assert hub.address(broker) is broker
    assert (hub.username, hub.password) == ("sim-good-0002", "pw")


def test_a_certificate_needs_the_tls_listener(bundle: dict[str, Any]) -> None:
    with CertificateFolder.for_run(None) as folder:
        hub = identity(folder.keep(DEVICE, bundle))
        with pytest.raises(ScenarioError, match="mqtts://"):
            hub.address(parse_mqtt_url("mqtt://127.0.0.1:1883"))
