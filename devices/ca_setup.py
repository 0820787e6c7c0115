"""The certificate authorities of a deployment, made once by `telecare ca init DIR`.

Two CAs, so that neither side can speak for the other:

- the **device CA** signs device certificates (devices/device_ca.py, at registration); the
  broker's device listener trusts it alone, so a device certificate names a device and
  nothing else;
- the **broker CA** signs the broker's server certificate (devices verify the broker with it)
  and the services' client certificates (`telecare.ingest`, `telecare.api`); the service
  listener trusts it alone, so no device certificate is accepted there.

Every name a service certificate carries contains a dot, which no device id does: on the device
listener a certificate signed by the wrong CA fails the handshake anyway, but were the two CAs
ever put in one `cafile`, a device still could not pass for a service, nor a service for a
device. Keys are EC P-256, written with mode 0600; an existing CA is never overwritten.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from telecare.devices.device_ca import (
    CLOCK_SKEW,
    DIGITAL_SIGNATURE_ONLY,
    DeviceCA,
    write_atomically,
)

DEVICE_CA = "device-ca"
BROKER_CA = "broker-ca"
BROKER = "broker"
DEVICE_CRL = "device-crl.pem"
# Devices without a client certificate (the broker's password listener): empty at first, then
# rendered by the backend (devices/broker_files.py).
DEVICE_PASSWORDS = "device-passwords"
INGEST = "telecare.ingest"
API = "telecare.api"
SERVICES = (INGEST, API)
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
DEFAULT_DAYS = 3650
# The backend rewrites the list at least daily (and at every revocation); this is how long the
# broker accepts devices on the first one if the backend never starts.
CRL_VALID_FOR = timedelta(days=7)
# A service name: dotted, and without MQTT's wildcards or level separator (it is an ACL user).
SERVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$"
_SERVICE_NAME_RE = re.compile(SERVICE_NAME_PATTERN)
KEY_MODE = 0o600
CERT_MODE = 0o644
SERVICE_PORT = 8884


class CaSetupError(Exception):
    """What `telecare ca` refuses to do (overwrite a CA, a bad name); the message says why."""


@dataclass(frozen=True)
class CaFiles:
    """The files `init` wrote, by role."""

    directory: Path
    device_ca_cert: Path
    device_ca_key: Path
    device_crl: Path
    device_passwords: Path
    broker_ca_cert: Path
    broker_ca_key: Path
    broker_cert: Path
    broker_key: Path
    services: dict[str, tuple[Path, Path]]  # name -> (certificate, key)

    def written(self) -> list[Path]:
        return [
            self.device_ca_cert,
            self.device_ca_key,
            self.device_crl,
            self.device_passwords,
            self.broker_ca_cert,
            self.broker_ca_key,
            self.broker_cert,
            self.broker_key,
            *(path for pair in self.services.values() for path in pair),
        ]


def init(
    directory: Path, *, broker_hosts: Sequence[str] = DEFAULT_HOSTS, days: int, now: datetime
) -> CaFiles:
    """Create both CAs, the broker's certificate for `broker_hosts`, an empty device CRL and the
    certificates of the two services, all valid for `days` days."""
    if days < 1:
        raise CaSetupError(f"--days must be at least 1, not {days}")
    if not broker_hosts:
        raise CaSetupError("at least one broker host name is needed")
    for stem in (DEVICE_CA, BROKER_CA):
        for suffix in (".pem", ".key"):
            if (directory / f"{stem}{suffix}").exists():
                raise CaSetupError(
                    f"{directory / (stem + suffix)} exists: a CA is never overwritten (every "
                    "certificate it signed would stop working); choose another directory"
                )
    alt_names = [_alt_name(host) for host in broker_hosts]
    directory.mkdir(parents=True, exist_ok=True)

    device_ca_key, device_ca = _make_ca("telecare device CA", days=days, now=now)
    broker_ca_key, broker_ca = _make_ca("telecare broker CA", days=days, now=now)
    device_ca_files = _write_pair(directory, DEVICE_CA, device_ca, device_ca_key)
    _write_pair(directory, BROKER_CA, broker_ca, broker_ca_key)

    broker_key = _new_key()
    broker = _leaf(
        broker_ca,
        broker_ca_key,
        broker_key,
        common_name=broker_hosts[0],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=alt_names,
        days=days,
        now=now,
    )
    broker_files = _write_pair(directory, BROKER, broker, broker_key)

    crl = DeviceCA.load(*device_ca_files).revocation_list([], now=now, valid_for=CRL_VALID_FOR)
    write_atomically(directory / DEVICE_CRL, crl, CERT_MODE)
    write_atomically(directory / DEVICE_PASSWORDS, "", CERT_MODE)

    services = {
        name: issue_service_certificate(directory, name, days=days, now=now) for name in SERVICES
    }
    return CaFiles(
        directory=directory,
        device_ca_cert=device_ca_files[0],
        device_ca_key=device_ca_files[1],
        device_crl=directory / DEVICE_CRL,
        device_passwords=directory / DEVICE_PASSWORDS,
        broker_ca_cert=directory / f"{BROKER_CA}.pem",
        broker_ca_key=directory / f"{BROKER_CA}.key",
        broker_cert=broker_files[0],
        broker_key=broker_files[1],
        services=services,
    )


def issue_service_certificate(
    directory: Path, name: str, *, days: int, now: datetime
) -> tuple[Path, Path]:
    """`NAME.pem` and `NAME.key` in `directory`, a clientAuth certificate of the broker CA."""
    if not _SERVICE_NAME_RE.fullmatch(name):
        raise CaSetupError(
            f"service name {name!r} must be lower case and dotted like {INGEST!r} "
            f"(pattern {SERVICE_NAME_PATTERN}): a dot keeps it apart from every device id"
        )
    if days < 1:
        raise CaSetupError(f"--days must be at least 1, not {days}")
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise CaSetupError(f"{path} exists: remove it first to replace it")
    ca_cert, ca_key = _load_ca(directory / f"{BROKER_CA}.pem", directory / f"{BROKER_CA}.key")
    key = _new_key()
    certificate = _leaf(
        ca_cert,
        ca_key,
        key,
        common_name=name,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alt_names=[],
        days=days,
        now=now,
    )
    return _write_pair(directory, name, certificate, key)


def env_lines(files: CaFiles, *, broker_host: str, service: str = INGEST) -> list[str]:
    """The backend's settings for these files, as `NAME=value` lines, for one service's process."""
    cert, key = files.services[service]
    return [
        "TELECARE_BROKER_CREDENTIALS=certificates",
        f"TELECARE_MQTT_URL=mqtts://{broker_host}:{SERVICE_PORT}",
        f"TELECARE_MQTT_CA_FILE={files.broker_ca_cert}",
        f"TELECARE_MQTT_CERT_FILE={cert}",
        f"TELECARE_MQTT_KEY_FILE={key}",
        f"TELECARE_DEVICE_CA_CERT_FILE={files.device_ca_cert}",
        f"TELECARE_DEVICE_CA_KEY_FILE={files.device_ca_key}",
        f"TELECARE_DEVICE_CRL_FILE={files.device_crl}",
        f"TELECARE_BROKER_PASSWORD_FILE={files.device_passwords}",
        "TELECARE_BROKER_RELOAD_COMMAND='systemctl reload mosquitto'",
    ]


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
        raise CaSetupError(f"broker host {host!r} is neither a DNS name nor an IP address")
    return x509.DNSName(host)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _make_ca(
    common_name: str, *, days: int, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
    days: int,
    now: datetime,
) -> x509.Certificate:
    # never past the CA: a chain is refused once its CA has expired, whatever the leaf says
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(DIGITAL_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CaSetupError(f"cannot read the broker CA ({cert_path}, {key_path}): {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaSetupError(f"{key_path}: the EC key of `telecare ca init` expected")
    return certificate, key


def _write_pair(
    directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_atomically(key_path, key_pem, KEY_MODE)
    write_atomically(
        cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode(), CERT_MODE
    )
    return cert_path, key_path


# `telecare ca` (telecare/cli.py): what follows only reads arguments and prints.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="ca_command", required=True)
    init_parser = commands.add_parser(
        "init",
        help="make the device CA, the broker CA, the broker's and the services' certificates",
    )
    init_parser.add_argument("dir", type=Path, help="directory to write them to")
    init_parser.add_argument(
        "--broker-host",
        action="append",
        dest="broker_hosts",
        metavar="NAME",
        help="a DNS name or IP address devices and services use for the broker (repeatable; "
        f"default: {' and '.join(DEFAULT_HOSTS)})",
    )
    init_parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    service = commands.add_parser(
        "service-cert", help="another service certificate, signed by the broker CA in DIR"
    )
    service.add_argument("dir", type=Path, help="the directory of `telecare ca init`")
    service.add_argument("name", help=f"a dotted service name, like {INGEST}")
    service.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )


def run_command(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        if args.ca_command == "init":
            hosts = args.broker_hosts or list(DEFAULT_HOSTS)
            files = init(args.dir, broker_hosts=hosts, days=args.days, now=now)
            print("\n".join(_describe_init(files, hosts)))
        else:
            cert, key = issue_service_certificate(args.dir, args.name, days=args.days, now=now)
            print(f"made {cert} and {key} (key mode 0600) for the service identity {args.name}")
    except CaSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _describe_init(files: CaFiles, hosts: Sequence[str]) -> list[str]:
    def name(path: Path) -> str:
        return path.name

    services = ", ".join(f"{name(c)}/.key" for c, _ in files.services.values())
    return [
        f"made in {files.directory} (keys mode 0600):",
        f"  {name(files.device_ca_cert)}  device CA: the broker's device listener trusts it",
        f"  {name(files.device_ca_key)}  its key: the API signs device certificates with it",
        f"  {name(files.device_crl)}  revoked device certificates (none yet; valid "
        f"{CRL_VALID_FOR.days} days: the backend rewrites it daily and at each revocation)",
        f"  {name(files.broker_ca_cert)}  broker CA: devices and services verify the broker "
        "with it; the service listener trusts it",
        f"  {name(files.broker_ca_key)}  its key: only `telecare ca service-cert` needs it "
        "(keep it offline)",
        f"  {name(files.broker_cert)}/.key  the broker's certificate for {', '.join(hosts)}",
        f"  {services}  the services' client certificates",
        "",
        "broker: deploy/mosquitto/production.conf reads these files from /etc/telecare/ca/",
        "(docs/REGISTRY.md); it must be able to read broker.key. Devices get broker-ca.pem.",
        "",
        "backend, a process running ingest and alerts (or all roles):",
        *(f"  {line}" for line in env_lines(files, broker_host=hosts[0], service=INGEST)),
        "an API-only process: the same, with its own certificate:",
        f"  TELECARE_MQTT_CERT_FILE={files.services[API][0]}",
        f"  TELECARE_MQTT_KEY_FILE={files.services[API][1]}",
    ]
