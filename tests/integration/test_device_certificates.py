"""Device certificates through the API, as a technician and an admin use them: the bundle at
registration (generated key or the device's own request), the credential view, re-issue,
revocation and decommissioning reaching the revocation list, bulk import, bad requests, and
`certificate_expiring` before a certificate lapses. The broker's side of the same certificates
is tests/integration/test_broker_identity.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from telecare.core.settings import Settings
from telecare.devices import ca_setup
from telecare.service import Service
from tests.support import look_at_expiry, wait_for


def _new_id() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def _csr(common_name: str = "whatever") -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode(), key


def _subject_and_issuer(pem: str) -> tuple[str, str]:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string()


async def _register(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"device_id": _new_id(), "heartbeat_interval_s": 60, **fields}
    answer = await api.post("/devices", json=body)
    assert answer.status_code == 201, answer.text
    registered: dict[str, Any] = answer.json()
    return registered


def _revoked_serials(settings: Settings) -> set[str]:
    assert settings.device_crl_file
    crl = x509.load_pem_x509_crl(Path(settings.device_crl_file).read_bytes())
    return {f"{entry.serial_number:X}" for entry in crl}


async def _listed(settings: Settings, serials: set[str]) -> bool | None:
    return serials <= _revoked_serials(settings) or None


async def test_registration_returns_a_bundle_once_and_the_view_shows_no_secret(
    certified_admin: httpx.AsyncClient, ca_files: ca_setup.CaFiles
) -> None:
    device = await _register(certified_admin)
    bundle = device["certificate"]
    subject, issuer = _subject_and_issuer(bundle["certificate_pem"])
    assert subject == f"CN={device['device_id']}"
    assert issuer == "CN=telecare device CA"
    assert bundle["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert bundle["device_ca_pem"] == ca_files.device_ca_cert.read_text()
    assert bundle["broker_ca_pem"] == ca_files.broker_ca_cert.read_text()

    view = (await certified_admin.get(f"/devices/{device['device_id']}/credentials")).json()
    assert view["broker_credentials"] == "certificates"
    [certificate] = view["certificates"]
    assert certificate["serial"] == bundle["serial"]
    assert certificate["status"] == "active"
    assert certificate["key_source"] == "generated"
    assert datetime.fromisoformat(certificate["not_after"]) == datetime.fromisoformat(
        bundle["not_after"]
    )
    assert "PRIVATE" not in str(view) and "certificate_pem" not in str(view)


async def test_a_devices_own_request_is_signed_for_its_id_whatever_it_asked(
    certified_admin: httpx.AsyncClient,
) -> None:
    csr, key = _csr(common_name="telecare.ingest")  # a device asking for the ingest's name
    device = await _register(certified_admin, csr=csr)
    bundle = device["certificate"]
    assert bundle["private_key_pem"] is None
    subject, _ = _subject_and_issuer(bundle["certificate_pem"])
    assert subject == f"CN={device['device_id']}"
    issued = x509.load_pem_x509_certificate(bundle["certificate_pem"].encode())
    assert issued.public_key() == key.public_key()


async def test_a_bad_request_is_refused_with_the_reason_and_registers_nothing(
    certified_admin: httpx.AsyncClient,
) -> None:
    device_id = _new_id()
    body = {"device_id": device_id, "heartbeat_interval_s": 60, "csr": "not a request"}
    answer = await certified_admin.post("/devices", json=body)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "csr"]
    assert (await certified_admin.get(f"/devices/{device_id}")).status_code == 404


async def test_reissue_revokes_the_old_certificate_and_publishes_the_list(
    certified_admin: httpx.AsyncClient, certificate_settings: Settings
) -> None:
    device = await _register(certified_admin)
    device_id, old = device["device_id"], device["certificate"]["serial"]
    csr, _ = _csr()
    answer = await certified_admin.post(f"/devices/{device_id}/certificate", json={"csr": csr})
    assert answer.is_success, answer.text
    new = answer.json()["serial"]
    assert new != old

    view = (await certified_admin.get(f"/devices/{device_id}/credentials")).json()
    assert [(c["serial"], c["status"]) for c in view["certificates"]] == [
        (new, "active"),
        (old, "revoked"),
    ]
    assert view["certificates"][1]["revocation_reason"] == "superseded"
    await wait_for(
        lambda: _listed(certificate_settings, {old}),
        what="the replaced certificate in the revocation list",
    )
    assert new not in _revoked_serials(certificate_settings)
    audit = (
        await certified_admin.get("/audit", params={"target_id": device_id, "limit": 10})
    ).json()["items"]
    assert {"device.certificate_issue", "device.certificate_revoke"} <= {e["action"] for e in audit}


async def test_revocation_and_decommissioning_reach_the_list_and_the_broker(
    certified_admin: httpx.AsyncClient, certificate_settings: Settings
) -> None:
    stolen = await _register(certified_admin)
    retired = await _register(certified_admin)
    answer = await certified_admin.post(
        f"/devices/{stolen['device_id']}/certificate/revoke", json={"reason": "compromised"}
    )
    assert answer.is_success, answer.text
    assert answer.json()["certificates"][0]["status"] == "revoked"
    again = await certified_admin.post(
        f"/devices/{stolen['device_id']}/certificate/revoke", json={}
    )
    assert again.status_code == 409
    assert (await certified_admin.delete(f"/devices/{retired['device_id']}")).is_success

    wanted = {stolen["certificate"]["serial"], retired["certificate"]["serial"]}
    await wait_for(
        lambda: _listed(certificate_settings, wanted),
        what="both certificates in the revocation list",
    )
    assert certificate_settings.device_crl_file
    reloads = Path(certificate_settings.device_crl_file).parent / "reloads"
    assert reloads.read_text().count("reloaded") >= 2  # at start, and for the revocations


async def test_an_import_gives_every_new_device_its_bundle(
    certified_admin: httpx.AsyncClient,
) -> None:
    ids = [_new_id() for _ in range(3)]
    csv = "device_id,heartbeat_interval_s\n" + "".join(f"{i},60\n" for i in ids) + f"{ids[0]},60\n"
    answer = await certified_admin.post(
        "/devices/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert answer.is_success, answer.text
    results = answer.json()["results"]
    # the repeated id fails both of its rows; the other two are registered with a bundle
    assert [r["ok"] for r in results] == [False, True, True, False]
    for result in results:
        if result["ok"]:
            subject, _ = _subject_and_issuer(result["certificate"]["certificate_pem"])
            assert subject == f"CN={result['device_id']}"
        else:
            assert result["certificate"] is None
    dry = await certified_admin.post(
        "/devices/import?dry_run=true",
        content=f"device_id,heartbeat_interval_s\n{_new_id()},60\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert dry.json()["results"][0]["ok"] and dry.json()["results"][0]["certificate"] is None


async def test_certificate_routes_say_when_certificates_are_not_in_use(
    admin: httpx.AsyncClient, devices: Any
) -> None:
    device = await devices.register()
    assert device["certificate"] is None
    answer = await admin.post(f"/devices/{device['device_id']}/certificate", json={})
    assert answer.status_code == 409
    assert "not in use" in answer.json()["detail"]


async def test_a_certificate_about_to_lapse_raises_certificate_expiring(
    certified_admin: httpx.AsyncClient, certificate_service: Service
) -> None:
    device = await _register(certified_admin)
    device_id = device["device_id"]
    pool = certificate_service.pool
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE device_certificates SET not_after = now() + interval '3 days'"
            " WHERE device_id = %s",
            [device_id],
        )
    now = datetime.now(UTC)
    await look_at_expiry(pool, now)

    async def alert() -> dict[str, Any] | None:
        answer = await certified_admin.get("/alerts", params={"device_id": device_id})
        items: list[dict[str, Any]] = answer.json()["items"]
        return items[0] if items else None

    raised = await wait_for(alert, what="certificate_expiring raised")
    assert raised["type"] == "certificate_expiring"
    assert raised["details"]["serial"] == device["certificate"]["serial"]
    assert raised["details"]["expired"] is False

    # a re-issued certificate reaches past the window: the alert resolves at the next look
    await certified_admin.post(f"/devices/{device_id}/certificate", json={})
    await look_at_expiry(pool, now + timedelta(seconds=1))
    resolved = await alert()
    assert resolved is not None and resolved["state"] == "resolved"


async def test_the_backends_own_client_ids_cannot_be_registered(
    certified_admin: httpx.AsyncClient,
) -> None:
    """On the production broker a device's client id is its id: a device `telecare-ingest`
    would end the ingest's session and throw its queued alarms away."""
    for device_id in ("telecare-ingest", "Telecare-alerts-1234abcd"):
        body = {"device_id": device_id, "heartbeat_interval_s": 60}
        answer = await certified_admin.post("/devices", json=body)
        assert answer.status_code == 422, answer.text
        assert "kept for the backend" in answer.text


async def test_decommissioned_certificates_leave_the_list_compromised_ones_stay(
    certified_admin: httpx.AsyncClient,
    certificate_service: Service,
    certificate_settings: Settings,
) -> None:
    """The broker checks the whole list at every handshake: a decommissioned device's
    certificate is listed for TELECARE_DEVICE_CRL_DECOMMISSIONED_DAYS (30), a stolen one until
    it expires."""
    retired = await _register(certified_admin)
    stolen = await _register(certified_admin)
    trigger = await _register(certified_admin)
    assert (await certified_admin.delete(f"/devices/{retired['device_id']}")).is_success
    revoke = f"/devices/{stolen['device_id']}/certificate/revoke"
    assert (await certified_admin.post(revoke, json={"reason": "compromised"})).is_success
    async with certificate_service.pool.connection() as conn:
        await conn.execute(
            "UPDATE device_certificates SET revoked_at = now() - interval '31 days'"
            " WHERE device_id = ANY(%s)",
            [[retired["device_id"], stolen["device_id"]]],
        )
    # the next publication (any revocation pokes it) leaves the old decommissioning out
    revoke = f"/devices/{trigger['device_id']}/certificate/revoke"
    assert (await certified_admin.post(revoke, json={})).is_success
    await wait_for(
        lambda: _listed(certificate_settings, {trigger["certificate"]["serial"]}),
        what="the list published again",
    )
    listed = _revoked_serials(certificate_settings)
    assert stolen["certificate"]["serial"] in listed
    assert retired["certificate"]["serial"] not in listed
