"""A virtual hub whose session cannot begin backs off: a broker that accepts its connection and
refuses its subscription is retried with growing, jittered delays, not in a tight loop (ten
thousand hubs doing that would hold a broker down)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from telecare.simulators.fleet_stats import FleetStats
from telecare.simulators.hub import Hub
from telecare.simulators.hub_parts import HubIdentity
from telecare.simulators.scenario import parse_scenario
from telecare.simulators.timeline import Timeline
from tests.brokers import BACKEND_USER, PrivateBroker
from tests.support import wait_for

WINDOW_S = 3.0
# With back-off (jitter up to 1.5 ** attempt seconds) a handful of attempts fit in the window;
# without it, each refusal is followed at once by the next connection: hundreds.
AT_MOST = 8


@pytest.fixture
def roleless_device() -> Iterator[tuple[PrivateBroker, str, str]]:
    """A broker with the shipped dynamic-security configuration and a device account with no
    role: it may connect, and subscribe to nothing (SUBACK 0x80)."""
    with PrivateBroker(dynsec=True) as broker:
        device_id, password = f"t-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        subprocess.run(
            [
                "mosquitto_ctrl",
                *("-h", "127.0.0.1", "-p", str(broker.port)),
                *("-u", BACKEND_USER, "-P", broker.backend_password),
                *("dynsec", "createClient", device_id, "-p", password, "-c", device_id),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield broker, device_id, password


async def test_a_hub_whose_subscription_is_refused_backs_off(
    roleless_device: tuple[PrivateBroker, str, str],
) -> None:
    broker, device_id, password = roleless_device
    scenario = parse_scenario(
        {
            "name": "t",
            "duration_s": 60,
            "groups": [{"name": "g", "devices": 1, "heartbeat_interval_s": 10}],
        },
        time_scale=1,
    )
    identity = HubIdentity(device_id, password, scenario.groups[0], "wifi", 10)
    stats = FleetStats(devices=1)
    hub = Hub(identity, broker.address, Timeline(), stats, random.Random(1))
    task = asyncio.create_task(hub.run())
    try:

        async def refused_once() -> bool:
            return stats.reconnects >= 1

        await wait_for(refused_once, what="the hub's subscription refused")
        before = stats.reconnects
        await asyncio.sleep(WINDOW_S)  # the rate of attempts over a window is what is tested
        attempts = stats.reconnects - before
        assert attempts <= AT_MOST, f"{attempts} attempts in {WINDOW_S:g} s: no back-off"
    finally:
        hub.stop()
        started = time.monotonic()
        async with asyncio.timeout(5):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert time.monotonic() - started < 5, "a hub backing off stops when told"
