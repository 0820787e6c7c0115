"""The alert engine across restarts of `telecare run`: no false, missed or stuck alert.

A fleet heartbeats every 10 s (the protocol's minimum) while `telecare run` is stopped with
SIGTERM and SIGKILL in turn and started again. While it is down, some devices drop with their
Last Will, some switch to battery, some that were silent or dropped come back, and after it is
up some go silent; the broker holds everything meanwhile (persistent session). After each start
every device's open alerts are compared with what the devices sent (tests/faults/restart_fleet.py),
and at the end every alert ever raised must have been justified by what the device sent, once.

`make test` runs 4 restarts of 100 devices; TELECARE_FAULT_SCALE=full runs 20 of 500.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.db.pool import open_pool
from tests.brokers import PrivateBroker
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.faults.restart_fleet import CONN, HBM, MAINS, Fleet, Truth
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.faults

FULL = os.environ.get("TELECARE_FAULT_SCALE") == "full"
RESTARTS, DEVICES = (20, 500) if FULL else (4, 100)
INTERVAL_S, GRACE_S = 10, 5
WINDOW_S = INTERVAL_S + GRACE_S
UP_S = 4.0  # running between a check and the next stop
DOWN_S = 12.0  # longer than an interval: every device has a heartbeat in the held backlog
CHECK_WITHIN_S = 5.0  # a start must show the truth by then (before the next heartbeats heal it)


@pytest.fixture
def restart_database() -> Iterator[str]:
    url = create_database(ADMIN_URL)
    yield url
    drop_database(ADMIN_URL, url)


@pytest.fixture
def restart_broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True) as broker:
        yield broker


@dataclass
class Tally:
    false: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)
    detected_s: list[float | None] = field(default_factory=list)
    unsure: int = 0

    def summary(self) -> str:
        detected = [d for d in self.detected_s if d is not None]
        return json.dumps(
            {
                "restarts": len(self.ready_s),
                "false": len(self.false),
                "missed": len(self.missed),
                "stuck": len(self.stuck),
                "left_unjudged_near_a_deadline": self.unsure,
                "start_to_ready_s_max": round(max(self.ready_s, default=0), 2),
                "start_to_truth_s_max": round(max(detected, default=0), 2),
                "starts_never_showing_the_truth": len(self.detected_s) - len(detected),
            }
        )


async def _open_alerts(database_url: str) -> dict[str, set[str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT device_id, type FROM alerts WHERE state <> 'resolved' AND device_id IS NOT NULL"
        )
        rows = await cur.fetchall()
    found: dict[str, set[str]] = {}
    for device_id, alert_type in rows:
        found.setdefault(device_id, set()).add(alert_type)
    return found


async def _raised(database_url: str) -> list[tuple[str, str, float]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT device_id, type, raised_at FROM alerts WHERE device_id IS NOT NULL"
            " ORDER BY raised_at"
        )
        return [(d, t, at.timestamp()) for d, t, at in await cur.fetchall()]


async def _register(service: ServiceProcess, database_url: str, device_ids: list[str]) -> None:
    async with open_pool(Settings(database_url=database_url, db_pool_min=1)) as pool:
        token = await create_token(pool, role=Role.ADMIN, name="restart-test")
    csv = "device_id,heartbeat_interval_s,heartbeat_grace_s\n" + "".join(
        f"{d},{INTERVAL_S},{GRACE_S}\n" for d in device_ids
    )
    async with httpx.AsyncClient(base_url=f"{service.url}/api/v1", timeout=60) as api:
        answer = await api.post(
            "/devices/import",
            content=csv.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
    assert answer.status_code == 200 and answer.json()["ok"] == len(device_ids), answer.text


def _compare(
    truth: Truth, found: dict[str, set[str]], t: float
) -> tuple[list[str], list[str], list[str], int]:
    """(false, missed, stuck, unsure) at `t`: stuck is open after the device cleared it."""
    verdict = truth.at(t)
    false: list[str] = []
    missed: list[str] = []
    stuck: list[str] = []
    unsure = 0
    for device_id, expected in verdict.expected.items():
        maybe = verdict.unsure[device_id]
        unsure += len(maybe)
        shown = found.get(device_id, set())
        for kind in expected - shown:
            missed.append(f"{device_id} {kind}")
        for kind in shown - expected - maybe:
            had = any(truth.justified(device_id, kind, s) is not None for s in _times(truth, t))
            (stuck if had else false).append(f"{device_id} {kind}")
    return false, missed, stuck, unsure


def _times(truth: Truth, t: float) -> list[float]:
    """Moments at which a condition may have held (for telling stuck from false)."""
    return [t - k for k in range(0, 120, 2)]


async def _check_start(
    truth: Truth, database_url: str, spawned_at: float, tally: Tally, label: str
) -> None:
    """Poll until the open alerts are the truth; what is still wrong after CHECK_WITHIN_S
    counts."""
    deadline = time.time() + CHECK_WITHIN_S
    while True:
        t = time.time()
        found = await _open_alerts(database_url)
        false, missed, stuck, unsure = _compare(truth, found, t)
        if not (false or missed or stuck):
            tally.detected_s.append(round(time.time() - spawned_at, 2))
            tally.unsure += unsure
            return
        if time.time() > deadline:
            break
        await asyncio.sleep(0.2)
    tally.detected_s.append(None)
    tally.unsure += unsure
    tally.false += [f"{label}: {x}" for x in false]
    tally.missed += [f"{label}: {x}" for x in missed]
    tally.stuck += [f"{label}: {x}" for x in stuck]
    print(f"{label}: false={false[:5]} missed={missed[:5]} stuck={stuck[:5]}")


async def test_restarts_leave_no_false_missed_or_stuck_alert(
    tmp_path: Path, restart_database: str, restart_broker: PrivateBroker
) -> None:
    tag = uuid.uuid4().hex[:6]
    device_ids = [f"rs{tag}-{n:04d}" for n in range(DEVICES)]
    service = ServiceProcess(
        {
            "TELECARE_DATABASE_URL": restart_database,
            "TELECARE_MQTT_URL": restart_broker.url,
            "TELECARE_MQTT_CLIENT_ID": f"restart-ingest-{tag}",
            "TELECARE_LOG_LEVEL": "INFO",
            "TELECARE_FLAPPING_DROPS": "1000",  # flapping has tests of its own
            "TELECARE_AREA_MIN_DEVICES": "1000000",
            "TELECARE_ENGINE_LEASE_S": "6",
        },
        tmp_path / "restart-service.log",
    )
    fleet = Fleet(restart_broker.address, device_ids, INTERVAL_S)
    truth = Truth(fleet, WINDOW_S)
    tally = Tally()
    rng = random.Random(15)
    each = max(2, DEVICES // 20)
    healthy = set(device_ids)
    ending: dict[int, list[tuple[str, str]]] = {}  # cycle -> (device, how it comes back)
    try:
        fleet.spawned()
        await service.start()
        fleet.ready()
        await _register(service, restart_database, device_ids)
        await fleet.start()
        await asyncio.sleep(INTERVAL_S + 1)  # every device heartbeating, stored, watched

        for cycle in range(RESTARTS):
            # Up: some devices go silent (their connection stays: no Last Will).
            silent = rng.sample(sorted(healthy), each)
            for device_id in silent:
                fleet.silence(fleet.devices[device_id])
                healthy.discard(device_id)
                ending.setdefault(cycle + 2, []).append((device_id, "resume"))
            await asyncio.sleep(UP_S)
            # Those that will drop during the downtime stop heartbeating a moment before.
            dropping = rng.sample(sorted(healthy), each)
            for device_id in dropping:
                fleet.silence(fleet.devices[device_id])
                healthy.discard(device_id)
            await asyncio.sleep(1.0)

            kill = cycle % 2 == 1
            fleet.stopping()
            stopped_at = time.time()
            await asyncio.to_thread(service.kill if kill else service.stop)
            await asyncio.sleep(0.5)

            # Down: the broker holds all of this for the service's persistent session.
            for device_id in dropping:
                fleet.drop(fleet.devices[device_id])
                ending.setdefault(cycle + 2, []).append((device_id, "reconnect"))
            battery = rng.sample(sorted(healthy), each)
            for device_id in battery:
                fleet.switch_power(fleet.devices[device_id], "battery")
                healthy.discard(device_id)
                ending.setdefault(cycle + 2, []).append((device_id, "mains"))
            for device_id, how in ending.pop(cycle, []):
                device = fleet.devices[device_id]
                if how == "mains":
                    fleet.switch_power(device, "mains")
                else:
                    await fleet.come_back(device)
                healthy.add(device_id)
            await asyncio.sleep(max(0.0, stopped_at + DOWN_S - time.time()))

            fleet.spawned()
            spawned_at = time.time()
            await service.start()
            fleet.ready()
            tally.ready_s.append(round(time.time() - spawned_at, 2))
            label = f"start {cycle + 1} after {'SIGKILL' if kill else 'SIGTERM'}"
            await _check_start(truth, restart_database, spawned_at, tally, label)

        # Every alert ever raised: justified by what the device sent, and once per episode.
        await asyncio.sleep(2)
        episodes: Counter[tuple[str, str, int]] = Counter()
        for device_id, alert_type, raised_at in await _raised(restart_database):
            if alert_type not in (HBM, CONN, MAINS):
                tally.false.append(f"raised {device_id} {alert_type}")
                continue
            episode = truth.justified(device_id, alert_type, raised_at)
            if episode is None:
                tally.false.append(f"raised {device_id} {alert_type} at {raised_at:.3f}")
                continue
            episodes[(device_id, alert_type, episode)] += 1
        tally.false += [f"raised again {key}" for key, n in episodes.items() if n > 1]
    finally:
        await fleet.close()
        await asyncio.to_thread(service.stop)

    print(f"\nRESTARTS {tally.summary()}")
    print("false:", tally.false[:20])
    print("missed:", tally.missed[:20])
    print("stuck:", tally.stuck[:20])
    assert not tally.false, f"{len(tally.false)} false alerts: {tally.false[:10]}"
    assert not tally.missed, f"{len(tally.missed)} missed alerts: {tally.missed[:10]}"
    assert not tally.stuck, f"{len(tally.stuck)} stuck alerts: {tally.stuck[:10]}"
