"""The device CA: it signs each device's client certificate and lists the revoked ones.

The production broker (deploy/mosquitto/production.conf) trusts this CA on its device listener
and takes a certificate's common name as the device's username, which its pattern ACL confines
to the device's own topics. So what this module signs *is* the device's identity: the subject
of a certificate request is ignored and replaced by `CN=<device id>`, and only a well-formed
device id is ever signed (service identities such as `telecare.ingest` contain a dot and could
otherwise be minted here and get the ingest's ACL on the device listener).

Times are backdated by a few minutes (`CLOCK_SKEW`): a certificate or a revocation list
"not yet valid" on a broker or device whose clock is slightly behind ours would be refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from telecare.protocol.messages import DEVICE_ID_PATTERN, RESERVED_ID_PREFIX, is_reserved_id

CLOCK_SKEW = timedelta(minutes=5)
# A PEM request of the largest key accepted here is a few kilobytes; more is not a request.
MAX_CSR_CHARS = 16_384
MIN_RSA_BITS = 2048
_CURVES = {"P-256": ec.SECP256R1.name, "P-384": ec.SECP384R1.name}
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)

_CaKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateRequestInvalid(ValueError):
    """A certificate signing request that cannot be signed; the message says why."""


class DeviceCAUnusable(ValueError):
    """The CA's certificate or key cannot be read, or they do not belong together."""


@dataclass(frozen=True)
class IssuedCertificate:
    serial: int  # random, 63 bits: positive and fits a PostgreSQL bigint
    device_id: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str  # hex of the SHA-256 of the certificate's DER
    certificate_pem: str
    private_key_pem: str | None  # only when the CA generated the key (no request given)


class DeviceCA:
    """A CA certificate with its private key, loaded once (`DeviceCA.load`)."""

    def __init__(self, certificate: x509.Certificate, key: _CaKey) -> None:
        self._certificate = certificate
        self._key = key
        self._hash = _hash_for(key)
        self._key_identifier = _authority_key_identifier(certificate)

    @classmethod
    def load(cls, cert_file: str | Path, key_file: str | Path) -> DeviceCA:
        """Read the CA (PEM files of `telecare ca init`); DeviceCAUnusable says what is wrong."""
        try:
            certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        except (OSError, ValueError) as exc:
            raise DeviceCAUnusable(f"device CA certificate {cert_file}: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        except TypeError as exc:  # encrypted: a service cannot type the passphrase
            raise DeviceCAUnusable(
                f"device CA key {key_file} is encrypted: give the key unencrypted (mode 0600)"
            ) from exc
        except (OSError, ValueError, UnsupportedAlgorithm) as exc:
            raise DeviceCAUnusable(f"device CA key {key_file}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise DeviceCAUnusable(f"device CA key {key_file}: EC or RSA key expected")
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise DeviceCAUnusable(
                f"device CA key {key_file} does not belong to the certificate {cert_file}"
            )
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise DeviceCAUnusable(f"{cert_file} is not a CA certificate (basicConstraints CA)")
        return cls(certificate, key)

    @property
    def certificate_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self, device_id: str, *, csr_pem: str | None, days: int, now: datetime
    ) -> IssuedCertificate:
        """Sign a certificate for `device_id`: for the request's key, or for a new P-256 key.

        Raises CertificateRequestInvalid for a request that cannot be used, ValueError for an
        id that is not a device id.
        """
        _check_device_id(device_id)
        if csr_pem is None:
            return self._issue_generated(device_id, days=days, now=now)
        public_key = _requested_key(csr_pem)
        return self._sign(device_id, public_key, days=days, now=now, private_key_pem=None)

    def issue_many(
        self, device_ids: Sequence[str], *, days: int, now: datetime
    ) -> list[IssuedCertificate]:
        """Certificates with generated keys for a bulk import, in the order of `device_ids`."""
        for device_id in device_ids:
            _check_device_id(device_id)
        return [self._issue_generated(d, days=days, now=now) for d in device_ids]

    def revocation_list(
        self, revoked: Iterable[tuple[int, datetime]], *, now: datetime, valid_for: timedelta
    ) -> str:
        """A PEM CRL of the (serial, revoked at) pairs, valid from a little before `now`.

        OpenSSL refuses *every* certificate of this CA once the CRL's nextUpdate has passed,
        so whoever writes it must write a new one well before `now + valid_for`.
        """
        _check_aware(now)
        entries = []
        for serial, revoked_at in revoked:
            _check_aware(revoked_at)
            entries.append(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(revoked_at)
                .build()
            )
        crl_number = x509.CRLNumber(_crl_number(now))
        # All entries at once: `add_revoked_certificate` copies the list at every call, so
        # adding them one by one costs the square of the list's length.
        builder = x509.CertificateRevocationListBuilder(
            issuer_name=self._certificate.subject,
            last_update=now - CLOCK_SKEW,
            next_update=now + valid_for,
            extensions=[
                x509.Extension(crl_number.oid, False, crl_number),
                x509.Extension(self._key_identifier.oid, False, self._key_identifier),
            ],
            revoked_certificates=entries,
        )
        crl = builder.sign(self._key, self._hash)
        return crl.public_bytes(serialization.Encoding.PEM).decode()

    def _issue_generated(self, device_id: str, *, days: int, now: datetime) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return self._sign(device_id, key.public_key(), days=days, now=now, private_key_pem=key_pem)

    def _sign(
        self,
        device_id: str,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        *,
        days: int,
        now: datetime,
        private_key_pem: str | None,
    ) -> IssuedCertificate:
        _check_aware(now)
        if days < 1:
            raise ValueError(f"a certificate must be valid for at least one day, not {days}")
        serial = _serial()
        not_before = now - CLOCK_SKEW
        not_after = now + timedelta(days=days)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(DIGITAL_SIGNATURE_ONLY, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._key_identifier, critical=False)
            .sign(self._key, self._hash)
        )
        return IssuedCertificate(
            serial=serial,
            device_id=device_id,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            private_key_pem=private_key_pem,
        )


DIGITAL_SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _requested_key(csr_pem: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key of a PEM request whose signature proves its sender holds the key."""
    if len(csr_pem) > MAX_CSR_CHARS:
        raise CertificateRequestInvalid(
            f"certificate request too long: {len(csr_pem)} characters, at most {MAX_CSR_CHARS}"
        )
    if "-----BEGIN CERTIFICATE REQUEST-----" not in csr_pem:
        raise CertificateRequestInvalid(
            "certificate request must be PEM (-----BEGIN CERTIFICATE REQUEST-----)"
        )
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as exc:
        raise CertificateRequestInvalid(f"certificate request unreadable: {exc}") from exc
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateRequestInvalid(f"certificate request key unreadable: {exc}") from exc
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _CURVES.values():
            raise CertificateRequestInvalid(
                f"certificate request key on curve {public_key.curve.name}: "
                f"use {' or '.join(_CURVES)}"
            )
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise CertificateRequestInvalid(
                f"certificate request RSA key of {public_key.key_size} bits: "
                f"at least {MIN_RSA_BITS} needed"
            )
    else:
        raise CertificateRequestInvalid(
            f"certificate request key type {type(public_key).__name__.removesuffix('PublicKey')}"
            f" not accepted: use EC {' or '.join(_CURVES)}, or RSA of {MIN_RSA_BITS}+ bits"
        )
    try:
        signed = csr.is_signature_valid
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise CertificateRequestInvalid(f"certificate request signature unusable: {exc}") from exc
    if not signed:
        raise CertificateRequestInvalid(
            "certificate request signature does not match its key (request altered?)"
        )
    return public_key


def _check_device_id(device_id: str) -> None:
    if not _DEVICE_ID_RE.fullmatch(device_id) or is_reserved_id(device_id):
        raise ValueError(
            f"not a device id (pattern {DEVICE_ID_PATTERN}, not starting with"
            f" {RESERVED_ID_PREFIX!r}): {device_id!r}"
        )


def _check_aware(moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"a time with its time zone expected, got {moment.isoformat()}")


def _serial() -> int:
    """Random and positive: RFC 5280 wants serials unpredictable, PostgreSQL wants a bigint."""
    while True:
        serial = secrets.randbits(63)
        if serial:
            return serial


def _crl_number(now: datetime) -> int:
    """Increases from one list to the next (RFC 5280), without a counter to keep anywhere."""
    return int(now.timestamp() * 1000)


def _hash_for(key: _CaKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _authority_key_identifier(certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise DeviceCAUnusable("device CA certificate: EC or RSA key expected") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _public_der(public_key: object) -> bytes:
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_atomically(path: str | Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` whole: a reader (the broker reloading its CRL) sees the old
    file or the new one, never half of one, and the new one survives a power cut."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), mode)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
