"""Certificates for TLS tests, made with openssl: a CA, a broker certificate it signs, and an
unrelated CA that must not be trusted."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path  # a CA that signed nothing here
    server_name: str


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", key, "-out", cert,
    )  # fmt: skip
    return key, cert


def make_certificates(folder: Path, *, server_name: str = "localhost") -> TlsFiles:
    """A CA and a broker certificate for `server_name` only (no IP address in it)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca(folder, "telecare-test-ca")
    _, other_ca = _ca(folder, "someone-else-ca")
    key, csr, cert = folder / "broker.key", folder / "broker.csr", folder / "broker.pem"
    extensions = folder / "broker.ext"
    extensions.write_text(f"subjectAltName = DNS:{server_name}\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={server_name}",
        "-keyout", key, "-out", csr,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", extensions, "-out", cert,
    )  # fmt: skip
    return TlsFiles(ca_cert, cert, key, other_ca, server_name)
