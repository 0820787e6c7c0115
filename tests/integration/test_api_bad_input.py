"""Input the database would refuse gets a 422 naming the field, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from telecare.service import Service

NUL = "\x00"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "loc"),
    [
        ("GET", "/devices", {"params": {"firmware": f"a{NUL}b"}}, ["query", "firmware"]),
        ("GET", "/alarms", {"params": {"device_id": NUL}}, ["query", "device_id"]),
        ("GET", "/devices/x%00y", {}, ["path", "device_id"]),
        ("GET", "/alarms/9223372036854775808", {}, ["path", "item_id"]),
        ("POST", "/alerts/0/ack", {}, ["path", "item_id"]),
        ("DELETE", "/tokens/99999999999999999999", {}, ["path", "token_id"]),
        ("GET", "/alerts", {"params": {"group_id": 2**70}}, ["query", "group_id"]),
        ("GET", "/alerts", {"params": {"limit": 10**9}}, ["query", "limit"]),
        ("GET", "/alerts", {"params": {"cursor": "%%%"}}, ["query", "cursor"]),
        ("GET", "/audit", {"params": {"cursor": "🦄"}}, ["query", "cursor"]),
        ("GET", "/devices", {"params": {"cursor": "gA"}}, ["query", "cursor"]),
        ("POST", "/tokens", {"json": {"name": f"bob{NUL}", "role": "admin"}}, ["body", "name"]),
        (
            "POST",
            "/devices",
            {"json": {"device_id": "nul-dev-1", "heartbeat_interval_s": 60, "address": NUL}},
            ["body", "address"],
        ),
        (
            "POST",
            "/devices",
            {
                "content": b'{"device_id": "sur-dev-1", "heartbeat_interval_s": 60,'
                b' "resident_ref": "\\ud800"}',
                "headers": {"Content-Type": "application/json"},
            },
            ["body", "resident_ref"],
        ),
        ("PATCH", "/devices/anything", {"json": {"serial": f"S{NUL}1"}}, ["body", "serial"]),
    ],
)
async def test_refused_with_the_field_named(
    admin: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object], loc: list[str]
) -> None:
    response = await admin.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 422, response.text
    assert loc in [error["loc"][:2] for error in response.json()["detail"]]


async def test_a_note_with_nul_is_refused_and_the_alarm_untouched(
    service: Service, operator: httpx.AsyncClient
) -> None:
    response = await operator.post("/alarms/1/ack", json={"note": f"on my way{NUL}"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "note"]


async def test_an_import_row_with_nul_fails_alone(technician: httpx.AsyncClient) -> None:
    good, bad = f"imp-{uuid.uuid4().hex[:8]}", f"imp-{uuid.uuid4().hex[:8]}"
    csv = f"device_id,heartbeat_interval_s,model\n{good},60,M1\n{bad},60,M{NUL}2\n"
    response = await technician.post(
        "/devices/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    results = {r["device_id"]: r for r in response.json()["results"]}
    assert results[good]["ok"] is True
    assert results[bad]["ok"] is False
    assert results[bad]["errors"][0]["field"] == "model"


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("what", "content", "status"),
    [
        ("oversized", b'{"device_id": "big-dev-1", "serial": "' + b"x" * (7 << 20) + b'"}', 413),
        (
            "deeply nested",
            b'{"device_id": "deep-1", "serial": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
            422,
        ),
        ("not UTF-8", b'{"device_id": "\xff\xfe", "heartbeat_interval_s": 60}', 422),
        ("not JSON", b"device_id=x", 422),
        ("a JSON list", b"[1, 2]", 422),
    ],
)
async def test_hostile_bodies_are_refused_with_a_reason(
    admin: httpx.AsyncClient, what: str, content: bytes, status: int
) -> None:
    response = await admin.post("/devices", content=content, headers=JSON)
    assert response.status_code == status, (what, response.text[:300])
    assert response.json()["detail"], what


async def test_a_streamed_body_past_the_limit_is_refused_whole(admin: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"device_id": "streamed-1", "serial": "'
        for _ in range(8):
            yield b"x" * (1 << 20)
        yield b'"}'

    response = await admin.post("/devices", content=chunks(), headers=JSON)
    assert response.status_code == 413, response.text[:300]
    assert "larger than" in response.json()["detail"]
    assert (await admin.get("/devices/streamed-1")).status_code == 404
