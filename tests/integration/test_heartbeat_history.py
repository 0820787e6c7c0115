"""GET /devices/{id}/heartbeats: raw or bucketed history for the device page's chart."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from telecare.db.migrations.runner import is_hypertable
from telecare.devices.telemetry import ORIGIN, HeartbeatBucket, heartbeat_buckets
from telecare.service import Service
from tests.support import Devices

T0 = datetime.fromisoformat("2026-01-05T10:00:00+00:00")
_INSERT = """
INSERT INTO heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s, power,
                        battery_pct, signal_dbm, network)
SELECT t, %(device)s, 'h' || n, t, n, 300, CASE WHEN n %% 4 = 0 THEN 'battery' ELSE 'mains' END,
       100 - n, -60 - n, '4g'
FROM generate_series(0, 11) AS n, LATERAL (SELECT %(t0)s + n * interval '5 minutes') AS x(t)
WHERE n NOT BETWEEN 6 AND 8  -- silent from 10:30 to 10:45
"""
WINDOW = {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}


async def _device_with_history(service: Service, devices: Devices) -> str:
    device_id: str = (await devices.register())["device_id"]
    async with service.pool.connection() as conn:
        await conn.execute(_INSERT, {"device": device_id, "t0": T0})
    return device_id


async def test_raw_history_pages_newest_first_without_loss(
    service: Service, devices: Devices, operator: httpx.AsyncClient
) -> None:
    device_id = await _device_with_history(service, devices)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 4, **WINDOW}
        if cursor:
            params["cursor"] = cursor
        page = (await operator.get(f"/devices/{device_id}/heartbeats", params=params)).json()
        seen += [h["msg_id"] for h in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"h{n}" for n in (11, 10, 9, 5, 4, 3, 2, 1, 0)]
    first = (await operator.get(f"/devices/{device_id}/heartbeats", params=WINDOW)).json()
    assert first["items"][0]["battery_pct"] == 89 and first["items"][0]["signal_dbm"] == -71


async def test_buckets_show_averages_minimums_and_a_gap_where_the_device_was_silent(
    service: Service, devices: Devices, operator: httpx.AsyncClient
) -> None:
    device_id = await _device_with_history(service, devices)
    params = {**WINDOW, "bucket": "15m"}
    buckets = (await operator.get(f"/devices/{device_id}/heartbeats", params=params)).json()
    assert [
        (b["bucket"][11:16], b["heartbeats"], b["battery_pct_avg"], b["battery_pct_min"])
        for b in buckets["items"]
    ] == [("10:45", 3, 90.0, 89), ("10:15", 3, 96.0, 95), ("10:00", 3, 99.0, 98)]
    assert [
        (b["signal_dbm_avg"], b["signal_dbm_min"], b["on_battery"]) for b in buckets["items"]
    ] == [
        (-70.0, -71, 0),
        (-64.0, -65, 1),
        (-61.0, -62, 1),
    ]
    second = await operator.get(f"/devices/{device_id}/heartbeats", params={**params, "limit": 2})
    rest = await operator.get(
        f"/devices/{device_id}/heartbeats",
        params={**params, "limit": 2, "cursor": second.json()["next"]},
    )
    assert [b["bucket"][11:16] for b in rest.json()["items"]] == ["10:00"]


async def test_time_bucket_and_date_bin_agree(service: Service, devices: Devices) -> None:
    """TimescaleDB's time_bucket where heartbeats is a hypertable, date_bin on plain PostgreSQL."""
    device_id = await _device_with_history(service, devices)

    async def buckets(timescale: bool) -> list[HeartbeatBucket]:
        return await heartbeat_buckets(
            service.pool,
            device_id,
            since=T0,
            until=T0 + timedelta(hours=1),
            bucket=timedelta(minutes=7),
            limit=99,
            timescale=timescale,
        )

    plain = await buckets(timescale=False)
    assert sum(b.heartbeats for b in plain) == 9
    assert all((b.bucket - ORIGIN) % timedelta(minutes=7) == timedelta(0) for b in plain)
    async with service.pool.connection() as conn:
        if await is_hypertable(conn, "heartbeats"):
            assert plain == await buckets(timescale=True)


async def test_bad_history_queries_name_the_parameter(
    devices: Devices, operator: httpx.AsyncClient
) -> None:
    device_id = (await devices.register())["device_id"]
    path = f"/devices/{device_id}/heartbeats"
    cases: list[tuple[dict[str, str | int], list[str]]] = [
        ({"bucket": "fortnight"}, ["query", "bucket"]),
        ({"bucket": "5s"}, ["query", "bucket"]),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, ["query", "since"]),
        ({"since": "2026-01-02T00:00:00"}, ["query", "since"]),  # no zone
        ({"since": "2025-01-01T00:00:00Z", "bucket": "1h"}, ["query", "since"]),  # > 92 days
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"limit": 0}, ["query", "limit"]),
    ]
    for params, loc in cases:
        response = await operator.get(path, params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"] == loc, params
    assert (await operator.get("/devices/nobody-here/heartbeats")).status_code == 404
    assert (await operator.get(path)).json() == {"items": [], "next": None}
