"""Figures for the registry, printed, never asserted (run by hand: `make bench-registry`).

- CSV import of ROWS devices through the API, without broker credentials and with the
  dynamic-security plugin (twice, to show how the plugin's cost grows with its client count);
- single registrations with the plugin;
- device lists and the migration report on a synthetic fleet of FLEET devices.

- device certificates (bench/registry_certificates.py): registration, import and revocation
  with 0, 100,000 and 1,800,000 devices already registered.

    .venv/bin/python -m bench.registry [--rows 1000] [--fleet 200000]
        [--certificates-only] [--fleets 0,100000,1800000] [--repeats 3] [--revoked-share 0.01]

Uses its own databases and private brokers, like the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager

import httpx
import psycopg

from bench.registry_api import admin_api
from bench.registry_certificates import run as run_certificates
from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.core.settings import Settings
from telecare.mqtt.client import connect
from telecare.protocol.messages import MessageKind, topic_for
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL


async def _timed(label: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    started = time.perf_counter()
    response = await request
    print(f"  {label}: {time.perf_counter() - started:.2f} s (HTTP {response.status_code})")
    return response


def _csv(prefix: str, rows: int) -> bytes:
    lines = ["device_id,heartbeat_interval_s,postcode,model,migration_stage"]
    lines += [f"{prefix}-{n:05d},300,SW1A {n % 9}AA,bench-hub,scheduled" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def _broker_stalls(address: BrokerAddress, done: asyncio.Event) -> float:
    """The longest round trip of a message through the broker until `done` (seconds)."""
    ping = topic_for("bench-ping", MessageKind.ACK)  # the backend's account may publish acks
    worst = 0.0
    back: asyncio.Queue[bytes] = asyncio.Queue()
    conn = await connect(
        address,
        client_id="bench-ping",
        username=address.username,
        password=address.password,
        on_message=lambda _, payload: back.put_nowait(payload),
    )
    try:
        await conn.subscribe(ping)
        while not done.is_set():
            started = time.perf_counter()
            await conn.publish(ping, b"x")
            await back.get()
            worst = max(worst, time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        await conn.disconnect()
    return worst


async def _imports(settings: Settings, rows: int, mode: str) -> None:
    print(f"CSV import, {rows} rows, broker credentials: {mode}")
    async with admin_api(settings) as (_, api):
        headers = {"Content-Type": "text/csv"}
        for attempt in (1, 2):
            body = _csv(f"{mode}{attempt}-{uuid.uuid4().hex[:4]}", rows)
            if attempt == 1:
                await _timed(
                    "dry run",
                    api.post(
                        "/devices/import", content=body, headers=headers, params={"dry_run": 1}
                    ),
                )
            done = asyncio.Event()
            stalls = asyncio.create_task(_broker_stalls(parse_mqtt_url(settings.mqtt_url), done))
            response = await _timed(
                f"import #{attempt}", api.post("/devices/import", content=body, headers=headers)
            )
            done.set()
            print(
                f"    rows ok: {response.json()['ok']}; longest broker round trip meanwhile:"
                f" {await stalls * 1000:.0f} ms"
            )
        started = time.perf_counter()
        for n in range(20):
            body_json = {"device_id": f"{mode}-single-{n:03d}", "heartbeat_interval_s": 60}
            assert (await api.post("/devices", json=body_json)).status_code == 201
        print(f"  single POST /devices: {(time.perf_counter() - started) / 20 * 1000:.0f} ms each")


async def _fleet(settings: Settings, fleet: int) -> None:
    print(f"Lists and report on {fleet} devices")
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        async with conn.cursor().copy(
            "COPY devices (device_id, heartbeat_interval_s, postcode, postcode_district, model,"
            " migration_stage, mqtt_password_hash) FROM STDIN"
        ) as copy:
            stages = ("analogue", "scheduled", "in_progress", "verifying", "complete")
            for n in range(fleet):
                district = f"B{n % 400}"
                await copy.write_row(
                    (
                        f"f-{n:07d}",
                        300,
                        f"{district} 1AA",
                        district,
                        f"m{n % 50}",
                        stages[n % 5],
                        "x",
                    )
                )
        await conn.execute(
            "INSERT INTO device_state (device_id, last_heartbeat_at, firmware)"
            " SELECT device_id, now() - interval '1 minute', 'fw-' || (hashtext(device_id) & 7)"
            " FROM devices WHERE device_id LIKE 'f-%' AND hashtext(device_id) % 10 <> 0"
        )
        await conn.execute("ANALYZE devices")
        await conn.execute("ANALYZE device_state")
        await conn.commit()
        plan = await conn.execute(
            "EXPLAIN SELECT device_id FROM devices WHERE postcode_district = 'B7'"
            " AND decommissioned_at IS NULL AND device_id > 'f-' ORDER BY device_id LIMIT 101"
        )
        print("  plan, district filter:", " | ".join(r[0].strip() for r in await plan.fetchall()))
    async with admin_api(settings) as (_, api):
        for label, params in [
            ("first page (100)", {}),
            ("migration_stage=verifying", {"migration_stage": "verifying"}),
            ("postcode_district=B7", {"postcode_district": "B7"}),
            ("model=m7", {"model": "m7"}),
            ("firmware=fw-3", {"firmware": "fw-3"}),
            ("status=never_seen (computed)", {"status": "never_seen"}),
            ("overdue_only (computed, few match)", {"overdue_only": "true"}),
        ]:
            await _timed(f"GET /devices {label}", api.get("/devices", params=params))
        await _timed("GET /migration/report", api.get("/migration/report"))
        await _timed(
            "GET /migration/report?postcode_district=B7",
            api.get("/migration/report", params={"postcode_district": "B7"}),
        )


@contextmanager
def _database() -> Iterator[str]:
    """A database of the benchmark's own, dropped at the end."""
    name = f"telecare_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _passwords(rows: int, fleet: int) -> None:
    with _database() as database_url:
        for mode in ("none", "dynsec"):
            with PrivateBroker(dynsec=mode == "dynsec") as broker:
                settings = Settings(
                    database_url=database_url,
                    mqtt_url=broker.url,
                    broker_credentials=mode,
                    api_port=0,
                )
                if mode == "none" or rows:
                    await _imports(settings, rows, mode)
                if mode == "none" and fleet:
                    await _fleet(settings, fleet)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--fleet", type=int, default=200_000)
    parser.add_argument(
        "--certificates-only", action="store_true", help="only the device certificates section"
    )
    parser.add_argument(
        "--fleets",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[0, 100_000, 1_800_000],
        help="devices registered before each certificates measurement (comma-separated)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="imports and revocations per size")
    parser.add_argument(
        "--revoked-share",
        type=float,
        default=0.01,
        help="share of the filled fleet with a superseded certificate still in the CRL",
    )
    parser.add_argument(
        "--no-explain", action="store_true", help="skip EXPLAIN of the insert path per size"
    )
    args = parser.parse_args()
    if not args.certificates_only:
        await _passwords(args.rows, args.fleet)
    with _database() as database_url:
        await run_certificates(
            database_url,
            args.fleets,
            repeats=args.repeats,
            revoked_share=args.revoked_share,
            explain=not args.no_explain,
        )


if __name__ == "__main__":
    asyncio.run(main())
