"""Test certificates, CRLs and password files for bench/broker_identity.py.

Everything is made in-process with `cryptography` (EC P-256, as the design's device CA issues),
because the benchmark needs tens of thousands of client certificates and an openssl process per
certificate would take longer than the measurements. A CRL is built from the whole list of
revoked entries at once: `CertificateRevocationListBuilder.add_revoked_certificate` copies the
list on every call, which makes a large CRL quadratic.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "localhost"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0.11 writes ($7$101$...)


@dataclass(frozen=True)
class ClientCert:
    cn: str
    serial: int
    pem: Path  # certificate followed by its key, as ssl.SSLContext.load_cert_chain reads it


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """A device CA, a broker certificate it signs, and client certificates on demand."""

    def __init__(self, folder: Path, name: str = "bench-device-ca") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = _name(name)
        ca = self._builder(self._ca_name, self._ca_key.public_key(), 1)
        ca = ca.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        self._ca = ca.sign(self._ca_key, hashes.SHA256())
        self.ca_cert = folder / "ca.pem"
        self.ca_cert.write_bytes(_pem(self._ca))
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = self._builder(_name(SERVER_NAME), server_key.public_key(), 2)
        server = server.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False
        )
        self.server_cert = folder / "server.pem"
        self.server_key = folder / "server.key"
        self.server_cert.write_bytes(_pem(server.sign(self._ca_key, hashes.SHA256())))
        self.server_key.write_bytes(_key_pem(server_key))
        self._crl_number = 0

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey, serial: int
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_name)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(self._now)
            .not_valid_after(self._now + datetime.timedelta(days=2))
        )

    def client(self, cn: str) -> ClientCert:
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = self._builder(_name(cn), key.public_key(), serial).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        path = self.folder / f"{cn}.pem"
        path.write_bytes(_pem(builder.sign(self._ca_key, hashes.SHA256())) + _key_pem(key))
        return ClientCert(cn, serial, path)

    def clients(self, prefix: str, count: int) -> list[ClientCert]:
        return [self.client(f"{prefix}-{n:06d}") for n in range(count)]

    def write_crl(
        self,
        path: Path,
        serials: list[int],
        *,
        also: bytes = b"",
        last_update: datetime.datetime | None = None,
    ) -> float:
        """Write a PEM CRL revoking `serials` (then `also`) atomically; returns the seconds."""
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.crl_pem(serials, last_update=last_update) + also)
        tmp.replace(path)
        return time.perf_counter() - started

    def crl_pem(self, serials: list[int], *, last_update: datetime.datetime | None = None) -> bytes:
        self._crl_number += 1
        when = last_update or datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        revoked = [
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(self._now)
            .build()
            for serial in serials
        ]
        builder = x509.CertificateRevocationListBuilder(
            issuer_name=self._ca_name,
            last_update=when,
            next_update=when + datetime.timedelta(days=7),
            revoked_certificates=revoked,
        ).add_extension(x509.CRLNumber(self._crl_number), critical=False)
        return builder.sign(self._ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def random_serials(count: int) -> list[int]:
    return [x509.random_serial_number() for _ in range(count)]


# Mosquitto's password file: `user:$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>`.


def password_hash(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def filler_hashes(count: int) -> list[str]:
    """Well-formed hashes of nobody's password, as fast as the registry would read them."""
    b64 = base64.b64encode
    return [
        f"$7${PBKDF2_ITERATIONS}${b64(os.urandom(12)).decode()}${b64(os.urandom(64)).decode()}"
        for _ in range(count)
    ]


def render_password_file(path: Path, entries: list[tuple[str, str]]) -> float:
    """Write `user:hash` lines atomically; returns the seconds it took."""
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        out.writelines(f"{user}:{hashed}\n" for user, hashed in entries)
    tmp.replace(path)
    return time.perf_counter() - started
