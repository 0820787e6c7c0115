"""Bulk registration from a CSV file: per-row results, dry runs, no half-made devices."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from telecare.api.csv_import import MAX_ROWS

CSV = {"Content-Type": "text/csv"}


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


async def _import(api: httpx.AsyncClient, text: str, **params: Any) -> httpx.Response:
    return await api.post("/devices/import", content=text.encode(), headers=CSV, params=params)


async def test_import_reports_each_row_and_registers_only_good_ones(
    admin: httpx.AsyncClient, technician: httpx.AsyncClient
) -> None:
    p = f"imp-{uuid.uuid4().hex[:6]}"
    existing = f"{p}-old"
    assert (
        await technician.post("/devices", json={"device_id": existing, "heartbeat_interval_s": 60})
    ).status_code == 201
    text = _csv(
        "device_id,heartbeat_interval_s,postcode,migration_stage,resident_ref",
        f"{p}-a,60,sw1a 1aa,,R1",
        f"{p}-b,5,SW1A 1AA,,",  # interval too short
        f"{existing},60,,,",  # already registered
        f"{p}-c,60,not a postcode,teleported,",  # two bad fields
        f"{p}-d,60,,scheduled,",
        f"{p}-d,120,,,",  # the same id twice in the file
        "",
        f'"{p}-e",300,"M1 1AE",complete,"R, with comma"',
    )
    response = await _import(technician, text)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["dry_run"], summary["rows"], summary["ok"], summary["failed"]) == (
        False,
        7,
        2,
        5,
    )
    results = {r["row"]: r for r in summary["results"]}
    assert results[2]["ok"] and len(results[2]["mqtt_password"]) >= 32
    assert [e["field"] for e in results[3]["errors"]] == ["heartbeat_interval_s"]
    assert results[4]["errors"][0]["field"] == "device_id"
    assert "already registered" in results[4]["errors"][0]["message"]
    assert sorted(e["field"] for e in results[5]["errors"]) == ["migration_stage", "postcode"]
    assert "row 7" in results[6]["errors"][0]["message"]
    assert "row 6" in results[7]["errors"][0]["message"]
    assert results[9]["ok"] and results[9]["device_id"] == f"{p}-e"
    assert all(r["mqtt_password"] is None for r in summary["results"] if not r["ok"])

    e = (await admin.get(f"/devices/{p}-e")).json()
    assert (e["postcode_district"], e["migration_stage"], e["resident_ref"]) == (
        "M1",
        "complete",
        "R, with comma",
    )
    for failed in (f"{p}-b", f"{p}-c", f"{p}-d"):
        assert (await admin.get(f"/devices/{failed}")).status_code == 404  # nothing half-made
    history = (await admin.get(f"/devices/{p}-a/migration")).json()["history"]
    assert [(h["actor"], h["to_stage"]) for h in history] == [("test-technician", "analogue")]
    audit = (await admin.get("/audit", params={"action": "device.import", "limit": 1})).json()
    assert audit["items"][0]["details"] == {"rows": 7, "registered": 2, "dry_run": False}


async def test_dry_run_checks_everything_and_registers_nothing(
    admin: httpx.AsyncClient, technician: httpx.AsyncClient
) -> None:
    p = f"dry-{uuid.uuid4().hex[:6]}"
    text = _csv("device_id,heartbeat_interval_s", f"{p}-1,60", f"{p}-2,60", "x,60")
    dry = (await _import(technician, text, dry_run="true")).json()
    assert (dry["dry_run"], dry["ok"], dry["failed"]) == (True, 2, 1)
    assert all(r["mqtt_password"] is None for r in dry["results"])
    assert (await admin.get(f"/devices/{p}-1")).status_code == 404

    real = (await _import(technician, text)).json()
    assert (real["ok"], real["failed"]) == (2, 1)
    assert (await admin.get(f"/devices/{p}-1")).status_code == 200
    again = (await _import(technician, text, dry_run="true")).json()
    assert again["ok"] == 0  # a dry run also sees what the registry already holds


async def test_multipart_upload_is_accepted(technician: httpx.AsyncClient) -> None:
    p = f"form-{uuid.uuid4().hex[:6]}"
    text = _csv("\ufeffdevice_id,heartbeat_interval_s", f"{p}-1,60")  # Excel's BOM
    response = await technician.post(
        "/devices/import", files={"file": ("devices.csv", text.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] == 1
    empty_form = await technician.post("/devices/import", files={"other": ("a.txt", b"x")})
    assert empty_form.status_code == 422
    assert empty_form.json()["detail"][0]["loc"] == ["body", "file"]


async def test_unreadable_files_are_refused_whole(
    technician: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    unknown = await _import(technician, _csv("device_id,heartbeat_interval_s,postcod", "a1b,60,M1"))
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "header"]
    assert "'postcod'" in unknown.json()["detail"][0]["msg"]
    missing = await _import(technician, _csv("device_id", "a1b"))
    assert "missing column(s) heartbeat_interval_s" in missing.json()["detail"][0]["msg"]
    latin1 = await technician.post(
        "/devices/import",
        content="device_id,serial\nabc,Ma\xf1ana\n".encode("latin-1"),
        headers=CSV,
    )
    assert latin1.status_code == 422 and "UTF-8" in latin1.json()["detail"][0]["msg"]
    json_body = await technician.post("/devices/import", json={"device_id": "abc"})
    assert json_body.status_code == 415

    too_many = _csv(
        "device_id,heartbeat_interval_s", *(f"r{n:05d},60" for n in range(MAX_ROWS + 1))
    )
    assert (await _import(technician, too_many, dry_run="true")).status_code == 413
    huge = "device_id,heartbeat_interval_s,address\n" + "x" * (5 * 1024 * 1024 + 1)
    response = await _import(technician, huge)
    assert response.status_code == 413
    assert "at most 10000 rows and 5 MB" in response.json()["detail"]
    assert (await _import(operator, _csv("device_id,heartbeat_interval_s"))).status_code == 403
