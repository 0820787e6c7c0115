"""The device CA signs what a device asks for only as that device, and what it signs is what
OpenSSL (so the broker) accepts; a request it cannot use is refused with a reason, never a crash."""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from telecare.devices import ca_setup
from telecare.devices.device_ca import (
    CertificateRequestInvalid,
    DeviceCA,
    DeviceCAUnusable,
    write_atomically,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    ca_setup.init(directory, days=30, now=NOW)
    return directory


@pytest.fixture(scope="module")
def ca(ca_dir: Path) -> DeviceCA:
    return DeviceCA.load(ca_dir / "device-ca.pem", ca_dir / "device-ca.key")


def _csr(key: object, common_name: str = "whoever-asked") -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _openssl_verify(ca_file: Path, cert_pem: str, tmp_path: Path, *extra: str) -> str:
    cert = tmp_path / "leaf.pem"
    cert.write_text(cert_pem)
    result = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(ca_file), *extra, str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def test_a_request_is_signed_for_the_device_whatever_subject_it_asks_for(ca: DeviceCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = ca.issue("pendant-0001", csr_pem=_csr(key, "telecare.ingest"), days=730, now=NOW)

    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert cert.subject.rfc4514_string() == "CN=pendant-0001"
    assert cert.public_key() == key.public_key()
    assert issued.private_key_pem is None
    assert issued.device_id == "pendant-0001"
    assert 0 < issued.serial < 2**63
    assert cert.serial_number == issued.serial
    assert issued.not_before == NOW - timedelta(minutes=5) == cert.not_valid_before_utc
    assert issued.not_after == NOW + timedelta(days=730) == cert.not_valid_after_utc
    assert issued.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()

    extensions = cert.extensions
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["P-384", "RSA-2048"],
)
def test_other_accepted_keys_are_signed(ca: DeviceCA, key: object) -> None:
    issued = ca.issue("hub-0002", csr_pem=_csr(key), days=1, now=NOW)
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert cert.public_key() == key.public_key()  # type: ignore[attr-defined]


def test_without_a_request_the_ca_makes_the_key(ca: DeviceCA) -> None:
    issued = ca.issue("pendant-0003", csr_pem=None, days=10, now=NOW)
    assert issued.private_key_pem is not None
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert cert.public_key() == key.public_key()


def test_many_devices_get_their_own_keys_and_serials(ca: DeviceCA) -> None:
    ids = [f"bulk-{n:04d}" for n in range(20)]
    issued = ca.issue_many(ids, days=30, now=NOW)
    assert [i.device_id for i in issued] == ids
    assert len({i.serial for i in issued}) == len(ids)
    assert len({i.private_key_pem for i in issued}) == len(ids)


def _tampered(pem: str) -> str:
    csr = x509.load_pem_x509_csr(pem.encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature's value
    tampered = x509.load_der_x509_csr(bytes(der))
    return tampered.public_bytes(serialization.Encoding.PEM).decode()


def _not_base64(pem: str) -> str:
    lines = pem.splitlines()
    lines[2] = "!" * len(lines[2])
    return "\n".join(lines)


P256_CSR = _csr(ec.generate_private_key(ec.SECP256R1()))
BAD_REQUESTS = {
    "empty": ("", "PEM"),
    "not PEM": ("hello", "PEM"),
    "a certificate, not a request": (
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "PEM",
    ),
    "broken base64": (_not_base64(P256_CSR), "unreadable"),
    "truncated": (
        P256_CSR[: len(P256_CSR) // 2] + "\n-----END CERTIFICATE REQUEST-----\n",
        "unreadable",
    ),
    "not ASCII": (P256_CSR.replace("REQUEST-----\n", "REQUEST-----\né", 1), "unreadable"),
    "too long": (P256_CSR + " " * 20_000, "too long"),
    "RSA 1024": (
        _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "at least 2048",
    ),
    "P-521": (_csr(ec.generate_private_key(ec.SECP521R1())), "P-256 or P-384"),
    "Ed25519": (_csr(ed25519.Ed25519PrivateKey.generate()), "not accepted"),
    "altered": (_tampered(P256_CSR), "signature"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_a_request_that_cannot_be_used_is_refused_with_a_reason(ca: DeviceCA, name: str) -> None:
    csr_pem, reason = BAD_REQUESTS[name]
    with pytest.raises(CertificateRequestInvalid, match=reason) as caught:
        ca.issue("pendant-0004", csr_pem=csr_pem, days=30, now=NOW)
    assert str(caught.value).startswith("certificate request")


@pytest.mark.parametrize("device_id", ["telecare.ingest", "ab", "-leading-dash", "a/b/c", "x+#"])
def test_only_device_ids_are_signed(ca: DeviceCA, device_id: str) -> None:
    with pytest.raises(ValueError, match="not a device id"):
        ca.issue(device_id, csr_pem=None, days=30, now=NOW)
    with pytest.raises(ValueError, match="not a device id"):
        ca.issue_many(["fine-0001", device_id], days=30, now=NOW)


def test_times_must_carry_their_zone_and_days_be_positive(ca: DeviceCA) -> None:
    with pytest.raises(ValueError, match="time zone"):
        ca.issue("pendant-0005", csr_pem=None, days=30, now=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="at least one day"):
        ca.issue("pendant-0005", csr_pem=None, days=0, now=NOW)


def test_openssl_accepts_an_issued_certificate_for_client_auth(
    ca: DeviceCA, ca_dir: Path, tmp_path: Path
) -> None:
    issued = ca.issue("pendant-0006", csr_pem=None, days=30, now=NOW)
    output = _openssl_verify(ca_dir / "device-ca.pem", issued.certificate_pem, tmp_path)
    assert output.strip().endswith(": OK"), output


def test_openssl_refuses_it_against_another_ca(ca: DeviceCA, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    ca_setup.init(foreign, days=30, now=NOW)
    issued = ca.issue("pendant-0007", csr_pem=None, days=30, now=NOW)
    output = _openssl_verify(foreign / "device-ca.pem", issued.certificate_pem, tmp_path)
    assert "unable to get local issuer certificate" in output, output
    # nor does the broker CA of the same deployment accept a device certificate
    output = _openssl_verify(foreign / "broker-ca.pem", issued.certificate_pem, tmp_path)
    assert ": OK" not in output


def test_the_revocation_list_names_the_revoked_serials(
    ca: DeviceCA, ca_dir: Path, tmp_path: Path
) -> None:
    revoked = ca.issue("pendant-0008", csr_pem=None, days=30, now=NOW)
    kept = ca.issue("pendant-0009", csr_pem=None, days=30, now=NOW)
    at = NOW - timedelta(hours=1)
    pem = ca.revocation_list([(revoked.serial, at), (12345, at)], now=NOW, valid_for=timedelta(7))

    crl = x509.load_pem_x509_crl(pem.encode())
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca_cert.subject
    assert {entry.serial_number for entry in crl} == {revoked.serial, 12345}
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial)
    assert entry is not None and entry.revocation_date_utc == at
    assert crl.last_update_utc == NOW - timedelta(minutes=5)
    assert crl.next_update_utc == NOW + timedelta(days=7)

    crl_file = tmp_path / "crl.pem"
    crl_file.write_text(pem)
    ca_file = ca_dir / "device-ca.pem"
    output = _openssl_verify(
        ca_file, revoked.certificate_pem, tmp_path, "-crl_check", "-CRLfile", str(crl_file)
    )
    assert "certificate revoked" in output, output
    output = _openssl_verify(
        ca_file, kept.certificate_pem, tmp_path, "-crl_check", "-CRLfile", str(crl_file)
    )
    assert output.strip().endswith(": OK"), output


def test_a_later_list_has_a_higher_number(ca: DeviceCA) -> None:
    numbers = [
        x509.load_pem_x509_crl(
            ca.revocation_list([], now=NOW + timedelta(seconds=s), valid_for=timedelta(1)).encode()
        )
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        for s in (0, 1, 3600)
    ]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_loading_says_what_is_wrong(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DeviceCAUnusable, match="No such file"):
        DeviceCA.load(tmp_path / "absent.pem", ca_dir / "device-ca.key")
    with pytest.raises(DeviceCAUnusable, match="does not belong"):
        DeviceCA.load(ca_dir / "device-ca.pem", ca_dir / "broker-ca.key")
    with pytest.raises(DeviceCAUnusable, match="not a CA"):
        DeviceCA.load(ca_dir / "broker.pem", ca_dir / "broker.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    with pytest.raises(DeviceCAUnusable, match="device CA key"):
        DeviceCA.load(ca_dir / "device-ca.pem", garbage)
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key((ca_dir / "device-ca.key").read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(DeviceCAUnusable, match="encrypted"):
        DeviceCA.load(ca_dir / "device-ca.pem", encrypted)


def test_a_file_is_replaced_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "crl.pem"
    target.write_text("old")
    write_atomically(target, "new", 0o640)
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["crl.pem"]  # no temporary file left behind
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "absent" / "crl.pem", "x")
