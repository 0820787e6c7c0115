"""Three alert engine processes share one fleet; one is killed with SIGKILL and the others take
its devices over, with no alert raised twice and no silent device missed.

The ingest and the API run in the test's own process; the engines are `telecare run --only
alerts` processes, each reading telemetry from the broker, with 3-second partition leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from telecare.alerts.leases import PARTITIONS, partition_of
from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.support import Mqtt, api_client, heartbeat, topic, wait_for

LEASE_S = 3


@pytest.fixture
def engines(settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "TELECARE_DATABASE_URL": settings.database_url,
        "TELECARE_MQTT_URL": settings.mqtt_url,
        "TELECARE_ENGINE_LEASE_S": str(LEASE_S),
        "TELECARE_API_PORT": "0",  # each serves /healthz and /metrics on a port of its own
    }
    started = []
    for n in range(3):
        with (tmp_path / f"engine-{n}.log").open("wb") as log:
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "telecare", "run", "--only", "alerts"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()  # a clean stop releases its leases
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        if process.poll() is None:
            process.kill()


@pytest.fixture
async def ingest_and_api(settings: Settings) -> AsyncIterator[Service]:
    async with Service(settings, {"ingest", "api"}) as running:
        await running.wait_ready()
        yield running


async def _owners(service: Service) -> dict[int, str]:
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT partition, owner FROM engine_leases WHERE owner IS NOT NULL"
            " AND expires_at > now()"
        )
        return dict(await cur.fetchall())


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


def _ids_owned_by(owners: dict[int, str], owner: str, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        candidate = f"mp-{uuid.uuid4().hex[:10]}"
        if owners[partition_of(candidate)] == owner:
            ids.append(candidate)
    return ids


async def _alerts(api: httpx.AsyncClient, device_ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for device_id in device_ids:
        response = await api.get("/alerts", params={"device_id": device_id})
        found += response.json()["items"]
    return found


async def test_a_killed_engine_process_is_taken_over_without_duplicates_or_misses(
    settings: Settings,
    ingest_and_api: Service,
    engines: list[subprocess.Popen[bytes]],
    mqtt: Mqtt,
) -> None:
    async def split_three_ways() -> dict[int, str] | None:
        owners = await _owners(ingest_and_api)
        shares = Counter(owners.values())
        fair = len(owners) == PARTITIONS and len(shares) == 3 and min(shares.values()) >= 20
        return owners if fair else None

    owners = await wait_for(split_three_ways, within_s=60, what="64 partitions split three ways")
    by_pid = {_pid(o): o for o in set(owners.values())}
    assert set(by_pid) == {p.pid for p in engines}
    victim = engines[0]
    survivors = {by_pid[p.pid] for p in engines[1:]}

    # Per engine: two devices that fall silent before the kill, and two that do after it.
    silent_before: list[str] = []
    silent_after: list[str] = []
    for owner in by_pid.values():
        ids = _ids_owned_by(owners, owner, 4)
        silent_before += ids[:2]
        silent_after += ids[2:]
    async with await api_client(ingest_and_api, Role.ADMIN) as admin:
        for device_id in silent_before + silent_after:
            body = {"device_id": device_id, "heartbeat_interval_s": 10, "heartbeat_grace_s": 0}
            assert (await admin.post("/devices", json=body)).status_code == 201

        async def keep_beating() -> None:
            seq = 0
            while True:
                seq += 1
                for device_id in silent_after:
                    await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(seq=seq))
                await asyncio.sleep(2)

        beating = asyncio.create_task(keep_beating(), name="test.keep_beating")
        try:

            async def all_before_alerted() -> bool:
                return len(await _alerts(admin, silent_before)) == len(silent_before)

            await wait_for(all_before_alerted, within_s=30, what="the first silences alerted")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)

            async def taken_over() -> dict[int, str] | None:
                now = await _owners(ingest_and_api)
                done = len(now) == PARTITIONS and set(now.values()) == survivors
                return now if done else None

            await wait_for(taken_over, within_s=30, what="the victim's partitions taken over")
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

        async def all_after_alerted() -> bool:
            return len(await _alerts(admin, silent_after)) >= len(silent_after)

        await wait_for(all_after_alerted, within_s=30, what="the later silences alerted")
        for device_id in silent_before + silent_after:  # everyone comes back
            await mqtt.publish(topic(device_id, "heartbeat"), heartbeat(seq=100))

        async def all_resolved() -> list[dict[str, Any]] | None:
            alerts = await _alerts(admin, silent_before + silent_after)
            return alerts if all(a["state"] == "resolved" for a in alerts) else None

        alerts = await wait_for(all_resolved, within_s=30, what="every alert resolved")
    per_subject = Counter((a["device_id"], a["type"]) for a in alerts)
    assert set(per_subject) == {(d, "heartbeat_missed") for d in silent_before + silent_after}
    assert set(per_subject.values()) == {1}, "an alert was raised twice"
    assert all(a["resolved_by"] == "device" for a in alerts)
