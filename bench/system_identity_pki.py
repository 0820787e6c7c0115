"""The identity benchmark's device certificates, made in process with `cryptography`.

The CAs, the broker's certificate and the services' (`telecare.ingest`) are those `telecare ca
init` makes (devices/ca_setup.py), which tests/brokers.py's production broker creates in its own
folder. Each device here gets a certificate of that device CA, signed by devices/device_ca.py
as the backend signs at registration (EC P-256, CN = device id), written with its key in one PEM
file (`<id>.pem`: what `ssl.SSLContext.load_cert_chain` reads). Issuing is split over processes
for a large fleet. One more device is issued and revoked in the broker's CRL, so that the
benchmark can show the list is live.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from telecare.devices.ca_setup import CRL_VALID_FOR, CaFiles
from telecare.devices.device_ca import DeviceCA, write_atomically

DAYS = 7  # a benchmark's certificates outlive the benchmark, not much more
REVOKED_DEVICE = "bench-revoked"
_CHUNK = 2000


def _issue(ca_cert: Path, ca_key: Path, folder: Path, device_ids: list[str]) -> list[int]:
    """Certificates for `device_ids` in `folder`; their serials."""
    ca = DeviceCA.load(ca_cert, ca_key)
    now = datetime.now(UTC)
    serials = []
    for start in range(0, len(device_ids), _CHUNK):
        for issued in ca.issue_many(device_ids[start : start + _CHUNK], days=DAYS, now=now):
            path = folder / f"{issued.device_id}.pem"
            path.write_text(issued.certificate_pem + (issued.private_key_pem or ""))
            path.chmod(0o600)
            serials.append(issued.serial)
    return serials


class DeviceCertificates:
    """Device certificates of the CA in `ca`, one file each in `folder`."""

    def __init__(self, ca: CaFiles, folder: Path) -> None:
        self.ca = ca
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def file(self, device_id: str) -> Path:
        return self.folder / f"{device_id}.pem"

    def issue(self, device_ids: list[str], *, processes: int = 2) -> int:
        """A certificate for each device that has none yet; how many were new."""
        missing = [d for d in device_ids if not self.file(d).exists()]
        ca = (self.ca.device_ca_cert, self.ca.device_ca_key)
        if len(missing) < 2 * _CHUNK or processes < 2:
            _issue(*ca, self.folder, missing)
            return len(missing)
        share = -(-len(missing) // processes)
        parts = [(*ca, self.folder, missing[p * share : (p + 1) * share]) for p in range(processes)]
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            pool.starmap(_issue, parts)
        return len(missing)

    def revoke_one(self) -> str:
        """Issue REVOKED_DEVICE a certificate and list it in the CRL; its id. The broker reads
        the list at its start (or on SIGHUP)."""
        (serial,) = _issue(
            self.ca.device_ca_cert, self.ca.device_ca_key, self.folder, [REVOKED_DEVICE]
        )
        ca = DeviceCA.load(self.ca.device_ca_cert, self.ca.device_ca_key)
        now = datetime.now(UTC)
        crl = ca.revocation_list(
            [(serial, now - timedelta(seconds=1))], now=now, valid_for=CRL_VALID_FOR
        )
        write_atomically(self.ca.device_crl, crl)
        return REVOKED_DEVICE
