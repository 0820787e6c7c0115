"""`telecare device ...` as a technician's provisioning script runs it: bundles written as
files, never overwritten, a revocation published before the command returns, refusals with a
reason and a non-zero status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509

from telecare.core.settings import Settings
from telecare.service import Service


def _telecare(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TELECARE_DATABASE_URL": settings.database_url,
        "TELECARE_MQTT_URL": settings.mqtt_url,
        "TELECARE_BROKER_CREDENTIALS": settings.broker_credentials,
        "TELECARE_DEVICE_CA_CERT_FILE": str(settings.device_ca_cert_file),
        "TELECARE_DEVICE_CA_KEY_FILE": str(settings.device_ca_key_file),
        "TELECARE_DEVICE_CRL_FILE": str(settings.device_crl_file),
        "TELECARE_BROKER_RELOAD_COMMAND": str(settings.broker_reload_command),
        "TELECARE_MQTT_CA_FILE": str(settings.mqtt_ca_file),
    }
    return subprocess.run(
        [sys.executable, "-m", "telecare", "device", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _bundle_files(folder: Path) -> dict[str, int]:
    """File name -> permission bits."""
    return {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}


def _subject(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


def _listed(settings: Settings) -> set[str]:
    assert settings.device_crl_file
    crl = x509.load_pem_x509_crl(Path(settings.device_crl_file).read_bytes())
    return {f"{entry.serial_number:X}" for entry in crl}


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def test_register_reissue_revoke_and_show_from_the_command_line(
    certificate_settings: Settings, certificate_service: Service, tmp_path: Path
) -> None:
    out = tmp_path / "bundles"
    device_id = f"cli-{uuid.uuid4().hex[:8]}"
    registered = _answer(
        _telecare(
            certificate_settings, "register", device_id, "--interval", "60", "--out", str(out)
        )
    )
    folder = Path(registered["certificate"]["folder"])
    assert folder.parent == out / device_id
    assert _bundle_files(folder) == {
        "certificate.pem": 0o644,
        "private-key.pem": 0o600,
        "device-ca.pem": 0o644,
        "broker-ca.pem": 0o644,
    }
    assert _subject(folder / "certificate.pem") == f"CN={device_id}"

    again = _telecare(
        certificate_settings, "register", device_id, "--interval", "60", "--out", str(out)
    )
    assert again.returncode == 1 and "already registered" in again.stderr

    reissued = _answer(_telecare(certificate_settings, "reissue", device_id, "--out", str(out)))
    assert reissued["certificate"]["serial"] != registered["certificate"]["serial"]

    revoked = _answer(
        _telecare(certificate_settings, "revoke", device_id, "--reason", "compromised")
    )
    assert revoked["revoked"] == [reissued["certificate"]["serial"]]
    serials = {registered["certificate"]["serial"], reissued["certificate"]["serial"]}
    assert serials <= _listed(certificate_settings)

    shown = _answer(_telecare(certificate_settings, "credentials", device_id))
    assert [c["status"] for c in shown["certificates"]] == ["revoked", "revoked"]
    assert "private" not in json.dumps(shown).lower()


async def test_import_writes_one_bundle_per_new_device(
    certificate_settings: Settings, certificate_service: Service, tmp_path: Path
) -> None:
    ids = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    csv = tmp_path / "devices.csv"
    _write(csv, "device_id,heartbeat_interval_s\n" + "".join(f"{i},120\n" for i in ids))
    out = tmp_path / "bundles"
    answer = _answer(_telecare(certificate_settings, "import", str(csv), "--out", str(out)))
    assert answer["ok"] == 3
    assert sorted(_bundle_files(out)) == sorted(ids)

    unknown = _telecare(certificate_settings, "revoke", "cli-nobody")
    assert unknown.returncode == 1 and "not registered" in unknown.stderr
    no_out = _telecare(certificate_settings, "import", str(csv))
    assert no_out.returncode == 2 and "--out" in no_out.stderr
