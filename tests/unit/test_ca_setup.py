"""`telecare ca init` makes the two CAs and the certificates a production broker and the backend
need, keeps its keys private, and never replaces a CA; `telecare ca service-cert` adds a service."""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from telecare.cli import main
from telecare.devices import ca_setup
from telecare.devices.ca_setup import CaSetupError

NOW = datetime.now(UTC)


def _verify(ca: Path, cert: Path, purpose: str, *extra: str) -> str:
    result = subprocess.run(
        ["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca), *extra, str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_makes_every_file_with_private_keys(tmp_path: Path) -> None:
    files = ca_setup.init(tmp_path / "ca", days=30, now=NOW)
    made = sorted(path.name for path in (tmp_path / "ca").iterdir())
    assert made == sorted(path.name for path in files.written())
    assert made == sorted(
        [
            "device-ca.pem", "device-ca.key", "device-crl.pem", "device-passwords",
            "broker-ca.pem", "broker-ca.key",
            "broker.pem", "broker.key", "telecare.ingest.pem", "telecare.ingest.key",
            "telecare.api.pem", "telecare.api.key",
        ]
    )  # fmt: skip
    for path in files.written():
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path.name


def test_each_certificate_is_trusted_only_where_it_belongs(tmp_path: Path) -> None:
    files = ca_setup.init(tmp_path, days=30, now=NOW)
    broker_ca, device_ca = files.broker_ca_cert, files.device_ca_cert
    assert _verify(broker_ca, files.broker_cert, "sslserver").strip().endswith(": OK")
    for cert, _ in files.services.values():
        assert _verify(broker_ca, cert, "sslclient").strip().endswith(": OK")
        assert ": OK" not in _verify(device_ca, cert, "sslclient")  # no service on devices'
        assert ": OK" not in _verify(broker_ca, cert, "sslserver")  # nor posing as the broker
    assert _certificate(files.services["telecare.ingest"][0]).subject.rfc4514_string() == (
        "CN=telecare.ingest"
    )
    crl = x509.load_pem_x509_crl(files.device_crl.read_bytes())
    assert list(crl) == []
    assert crl.is_signature_valid(_certificate(device_ca).public_key())  # type: ignore[arg-type]
    for ca in (broker_ca, device_ca):
        basic = _certificate(ca).extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.value.ca and basic.critical


def test_the_broker_certificate_names_the_hosts_given(tmp_path: Path) -> None:
    default = ca_setup.init(tmp_path / "default", days=30, now=NOW)
    names = _certificate(default.broker_cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(n.value) for n in names.value] == ["localhost", "127.0.0.1"]

    hosts = ["broker.example", "10.1.2.3", "::1"]
    files = ca_setup.init(tmp_path / "given", broker_hosts=hosts, days=30, now=NOW)
    certificate = _certificate(files.broker_cert)
    alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    for check in (["-verify_hostname", "broker.example"], ["-verify_ip", "10.1.2.3"]):
        output = _verify(files.broker_ca_cert, files.broker_cert, "sslserver", *check)
        assert output.strip().endswith(": OK"), output
    for check in (["-verify_hostname", "other.example"], ["-verify_ip", "10.9.9.9"]):
        assert ": OK" not in _verify(files.broker_ca_cert, files.broker_cert, "sslserver", *check)


def test_an_existing_ca_is_never_replaced(tmp_path: Path) -> None:
    ca_setup.init(tmp_path, days=30, now=NOW)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(CaSetupError, match="never overwritten"):
        ca_setup.init(tmp_path, days=30, now=NOW)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    ("hosts", "days", "why"),
    [(["bad host"], 30, "neither a DNS name"), ([], 30, "at least one"), (["x"], 0, "--days")],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, hosts: list[str], days: int, why: str
) -> None:
    with pytest.raises(CaSetupError, match=why):
        ca_setup.init(tmp_path / "ca", broker_hosts=hosts, days=days, now=NOW)
    assert not (tmp_path / "ca").exists()


def test_another_service_certificate_is_signed_by_the_broker_ca(tmp_path: Path) -> None:
    files = ca_setup.init(tmp_path, days=30, now=NOW)
    cert, key = ca_setup.issue_service_certificate(tmp_path, "telecare.ops", days=5, now=NOW)
    assert _certificate(cert).subject.rfc4514_string() == "CN=telecare.ops"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert _verify(files.broker_ca_cert, cert, "sslclient").strip().endswith(": OK")
    with pytest.raises(CaSetupError, match="exists"):
        ca_setup.issue_service_certificate(tmp_path, "telecare.ops", days=5, now=NOW)


@pytest.mark.parametrize("name", ["ops", "pendant-0001", "Telecare.Ops", "telecare.+", "a.b/c"])
def test_a_service_name_must_be_dotted_and_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(CaSetupError, match="dotted"):
        ca_setup.issue_service_certificate(tmp_path, name, days=5, now=NOW)


def test_the_command_prints_what_it_made_and_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "ca"
    assert main(["ca", "init", str(directory), "--broker-host", "broker.example"]) == 0
    out = capsys.readouterr().out
    assert f"made in {directory}" in out
    assert "TELECARE_BROKER_CREDENTIALS=certificates" in out
    assert "TELECARE_MQTT_URL=mqtts://broker.example:8884" in out
    assert f"TELECARE_DEVICE_CA_KEY_FILE={directory / 'device-ca.key'}" in out
    assert f"TELECARE_MQTT_CERT_FILE={directory / 'telecare.api.pem'}" in out

    assert main(["ca", "init", str(directory)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert main(["ca", "service-cert", str(directory), "telecare.ops", "--days", "90"]) == 0
    assert "telecare.ops.pem" in capsys.readouterr().out
    assert main(["ca", "service-cert", str(directory), "ops"]) == 1
    assert "dotted" in capsys.readouterr().err
