"""No judgement without a feed: a broker frozen with SIGSTOP, and a broker restart.

While the feed is down `/healthz` is red within a few canary intervals (far inside 1.5 keep-alive
periods of the telemetry session), no alert is raised, and afterwards the deadlines that passed
meanwhile are judged against what arrived: devices that kept heartbeating are not alerted, a
device that is truly silent is alerted, once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from telecare.api.tokens import Role
from telecare.core.settings import Settings
from telecare.service import Service
from tests.brokers import PrivateBroker
from tests.faults.restart_fleet import Fleet
from tests.support import Devices, api_client, wait_for

pytestmark = pytest.mark.faults

INTERVAL_S, GRACE_S = 10, 2
WINDOW_S = INTERVAL_S + GRACE_S
TELEMETRY_KEEPALIVE_S = 30  # mqtt/subscription.py
DEVICES = 20


@pytest.fixture
def feed_broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True) as broker:
        yield broker


@dataclass
class Setup:
    service: Service
    fleet: Fleet
    silent: str
    started_at: float


@pytest.fixture
async def setup(settings: Settings, feed_broker: PrivateBroker) -> AsyncIterator[Setup]:
    own = settings.model_copy(
        update={"mqtt_url": feed_broker.url, "mqtt_client_id": f"feed-{uuid.uuid4().hex[:8]}"}
    )
    async with Service(own) as service:
        await service.wait_ready()
        ids = []
        async with await api_client(service, Role.ADMIN) as admin:
            devices = Devices(admin)
            for _ in range(DEVICES):
                device = await devices.register(
                    heartbeat_interval_s=INTERVAL_S, heartbeat_grace_s=GRACE_S
                )
                ids.append(device["device_id"])
        fleet = Fleet(feed_broker.address, ids, INTERVAL_S)
        fleet.spawned()
        fleet.ready()
        await fleet.start()
        try:
            yield Setup(service, fleet, ids[0], time.time())
        finally:
            await fleet.close()


async def _health(service: Service) -> tuple[int, dict[str, bool]]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{service.api_url}/healthz")
    checks: dict[str, bool] = answer.json()["checks"]
    return answer.status_code, checks


async def _alerts(database_url: str, device_ids: list[str]) -> list[tuple[str, str, float, str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT device_id, type, raised_at, state FROM alerts WHERE device_id = ANY(%s)"
            " ORDER BY raised_at",
            [device_ids],
        )
        return [(d, t, at.timestamp(), s) for d, t, at, s in await cur.fetchall()]


async def _red_within(service: Service, since: float) -> float:
    async def red() -> float | None:
        code, checks = await _health(service)
        return time.time() - since if code == 503 and not checks["telemetry_feed"] else None

    return await wait_for(red, within_s=1.5 * TELEMETRY_KEEPALIVE_S, what="/healthz red")


async def _silent_device_alerted_once(
    setup: Setup, within_s: float, *, wills_published: bool = False
) -> None:
    """After recovery: the silent device has its heartbeat_missed, nobody else has any alert.
    `wills_published`: the broker published the devices' Last Wills as it stopped (their
    connections did end): connection_lost alerts, resolved once the devices are back."""
    ids = list(setup.fleet.devices)
    url = setup.service.settings.database_url

    async def alerted() -> bool:
        return any(
            (d, t) == (setup.silent, "heartbeat_missed") for d, t, _, _ in await _alerts(url, ids)
        )

    await wait_for(alerted, within_s=within_s, what="the silent device alerted")
    await asyncio.sleep(2)
    alerts = await _alerts(url, ids)
    if wills_published:
        assert all(s == "resolved" for _, t, _, s in alerts if t == "connection_lost"), alerts
        alerts = [a for a in alerts if a[1] != "connection_lost"]
    assert [(d, t) for d, t, _, _ in alerts] == [(setup.silent, "heartbeat_missed")], alerts


async def test_a_frozen_broker_turns_health_red_and_raises_nothing(
    setup: Setup, feed_broker: PrivateBroker
) -> None:
    await asyncio.sleep(INTERVAL_S + 1)  # every device heartbeating and watched
    setup.fleet.silence(setup.fleet.devices[setup.silent])
    frozen_at = time.time()
    os.kill(feed_broker.pid, signal.SIGSTOP)
    try:
        red_after_s = await _red_within(setup.service, frozen_at)
        await asyncio.sleep(WINDOW_S + 4 - (time.time() - frozen_at))  # every deadline passes
        raised = await _alerts(setup.service.settings.database_url, list(setup.fleet.devices))
        assert raised == [], "an alert raised on silence the engine could not hear"
    finally:
        os.kill(feed_broker.pid, signal.SIGCONT)
    thawed_at = time.time()

    async def green() -> float | None:
        code, _ = await _health(setup.service)
        return time.time() - thawed_at if code == 200 else None

    green_after_s = await wait_for(green, within_s=30, what="/healthz green again")
    print(f"\nFROZEN BROKER red_after_s={red_after_s:.2f} green_after_s={green_after_s:.2f}")
    assert red_after_s <= 1.5 * TELEMETRY_KEEPALIVE_S
    assert red_after_s <= 4 * setup.service.settings.canary_interval_s
    await _silent_device_alerted_once(setup, within_s=WINDOW_S + 5)


async def test_a_broker_restart_pauses_judgement_and_misses_nothing(
    setup: Setup, feed_broker: PrivateBroker
) -> None:
    await asyncio.sleep(INTERVAL_S + 1)
    setup.fleet.silence(setup.fleet.devices[setup.silent])
    stopped_at = time.time()
    await asyncio.to_thread(feed_broker.stop)
    red_after_s = await _red_within(setup.service, stopped_at)
    await asyncio.sleep(max(0.0, stopped_at + 8 - time.time()))
    await asyncio.to_thread(feed_broker.start)
    await setup.fleet.reconnect_all()

    async def green() -> bool:
        code, _ = await _health(setup.service)
        return code == 200

    await wait_for(green, within_s=60, what="/healthz green again")
    print(f"\nBROKER RESTART red_after_s={red_after_s:.2f}")
    await _silent_device_alerted_once(setup, within_s=WINDOW_S + 5, wills_published=True)
