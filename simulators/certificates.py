"""The fleet's device certificates, when the backend issues them (TELECARE_BROKER_CREDENTIALS=
certificates): written to files, since TLS reads a client certificate and its key from files.

Registration answers a bundle (certificate, key, the broker's CA) once; the hub then connects
to the broker's device listener with it, and no password. The files go beside the fleet file
(`--fleet-file F`: folder `F.certs`, kept, as the fleet file keeps passwords, so `--attach F`
runs the same devices again), or to a private temporary folder removed when the run ends. The
folder is 0700 and every key 0600: a key is the device's identity.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from telecare.simulators.scenario_errors import ScenarioError

if TYPE_CHECKING:
    from telecare.simulators.registration import FleetDevice

BROKER_CA = "broker-ca.pem"
DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644


def write_private(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode` from the first byte on (never briefly readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(mode)  # an existing file keeps its mode on O_CREAT


class CertificateFolder:
    """`with CertificateFolder.for_run(fleet_file) as folder:`; `keep()` writes one device's
    bundle. Nothing is created until the first bundle: a password fleet leaves no folder."""

    def __init__(self, directory: Path | None) -> None:
        self._wanted = directory  # None: a temporary folder, removed at the end
        self.directory: Path | None = None

    @classmethod
    def for_run(cls, fleet_file: Path | None) -> CertificateFolder:
        return cls(None if fleet_file is None else beside(fleet_file))

    @property
    def temporary(self) -> bool:
        return self._wanted is None

    def keep(self, device: FleetDevice, bundle: dict[str, Any]) -> FleetDevice:
        """Write the bundle's certificate, key and broker CA; the device with their paths."""
        key = bundle.get("private_key_pem")
        if not key:
            raise ScenarioError(
                f"the certificate bundle of {device.device_id} holds no private key: the "
                "simulator sends no certificate request, so the backend must generate the key"
            )
        folder = self._folder()
        cert_file, key_file = folder / f"{device.device_id}.pem", folder / f"{device.device_id}.key"
        write_private(key_file, str(key), KEY_MODE)
        write_private(cert_file, str(bundle["certificate_pem"]), CERT_MODE)
        ca_file = None
        if bundle.get("broker_ca_pem"):  # the same for every device: written once
            ca_file = folder / BROKER_CA
            if not ca_file.exists():
                write_private(ca_file, str(bundle["broker_ca_pem"]), CERT_MODE)
        return replace(
            device,
            password=None,
            cert_file=str(cert_file),
            key_file=str(key_file),
            ca_file=None if ca_file is None else str(ca_file),
        )

    def _folder(self) -> Path:
        if self.directory is None:
            if self._wanted is None:
                self.directory = Path(tempfile.mkdtemp(prefix="telecare-sim-certs-"))
            else:
                self._wanted.mkdir(mode=DIR_MODE, exist_ok=True)
                self.directory = self._wanted
            self.directory.chmod(DIR_MODE)
        return self.directory

    def close(self) -> None:
        """Remove a temporary folder and every key in it; a kept one stays."""
        if self.temporary and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def beside(fleet_file: Path) -> Path:
    """The folder kept with a fleet file: `fleet.json` -> `fleet.certs` (absolute: the fleet
    file names its files, and `--attach` may run from another directory)."""
    return fleet_file.absolute().with_suffix(".certs")


def self_signed(common_name: str, folder: Path) -> tuple[Path, Path]:
    """A client certificate an intruder makes for itself (no CA of the deployment signed it),
    with its key, written to `folder`: what a device listener must refuse at the handshake."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{common_name}.pem", folder / f"{common_name}.key"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_private(key_file, key_pem, KEY_MODE)
    write_private(
        cert_file, certificate.public_bytes(serialization.Encoding.PEM).decode(), CERT_MODE
    )
    return cert_file, key_file
