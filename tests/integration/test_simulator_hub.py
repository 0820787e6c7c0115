"""A virtual hub on the real (private) broker, no backend: what a device puts on the wire."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from telecare.protocol.decode import decode
from telecare.protocol.messages import MessageKind
from telecare.simulators.fleet_stats import FleetStats
from telecare.simulators.hub import Hub
from telecare.simulators.hub_parts import HubIdentity
from telecare.simulators.load import LoadOptions, run_load
from telecare.simulators.scenario import parse_scenario
from telecare.simulators.scenario_events import DropMode
from telecare.simulators.timeline import Timeline
from tests.brokers import PrivateBroker
from tests.support import Mqtt, wait_for


def _hub(broker: PrivateBroker, device_id: str, **group: Any) -> tuple[Hub, Timeline]:
    scenario = parse_scenario(
        {
            "name": "t",
            "duration_s": 60,
            "groups": [
                {
                    "name": "g",
                    "devices": 1,
                    "heartbeat_interval_s": 10,
                    "peripherals": [{"kind": "pendant", "battery_pct": 70}],
                    **group,
                }
            ],
        },
        time_scale=1,
    )
    timeline = Timeline()
    identity = HubIdentity(device_id, None, scenario.groups[0], "wifi", 10)
    return Hub(
        identity, broker.address, timeline, FleetStats(devices=1), random.Random(1)
    ), timeline


class Listener:
    """Every message on a device's topics, as (kind, payload, retained)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bool]] = []

    def of(self, kind: str) -> list[bytes]:
        return [payload for k, payload, _ in self.seen if k == kind]

    async def run(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            self.seen.append(
                (message.topic.value.rsplit("/", 1)[1], message.payload, message.retain)
            )


@asynccontextmanager
async def _listening(mqtt: Mqtt, device_id: str) -> AsyncIterator[Listener]:
    listener = Listener()
    async with mqtt.client() as client:
        await client.subscribe(f"telecare/v1/{device_id}/#", qos=1)
        task = asyncio.create_task(listener.run(client), name="test.listener")
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_hub_speaks_protocol_and_its_last_will_fires_on_network_loss(
    broker: PrivateBroker, mqtt: Mqtt
) -> None:
    hub, timeline = _hub(broker, "hub-test-0001")
    async with _listening(mqtt, hub.device_id) as heard:
        running = asyncio.create_task(hub.run(), name="test.hub")
        await wait_for(lambda: _value(heard.of("heartbeat")), what="first heartbeat")
        beat = decode(MessageKind.HEARTBEAT, heard.of("heartbeat")[0])  # valid per docs/PROTOCOL.md
        assert beat.model_dump()["peripherals"][0]["kind"] == "pendant"
        assert json.loads(heard.of("status")[0])["state"] == "online"

        hub.drop(DropMode.NETWORK)
        await wait_for(lambda: _value(len(heard.of("status")) >= 2), what="last will")
        assert json.loads(heard.of("status")[1]) == {"state": "offline", "reason": "lwt"}

        hub.restore()
        await wait_for(lambda: _value(len(heard.of("heartbeat")) >= 2), what="back online")
        assert json.loads(heard.of("status")[2])["state"] == "online"
        hub.stop()
        await running
    kinds = [e["k"] for e in timeline.of(hub.device_id)]
    assert kinds[:4] == ["online", "hb", "offline", "online"]


async def test_unacknowledged_alarm_is_resent_with_the_same_msg_id_until_acked(
    broker: PrivateBroker, mqtt: Mqtt
) -> None:
    hub, timeline = _hub(broker, "hub-test-0002", alarm_resend_s=1)
    async with _listening(mqtt, hub.device_id) as heard:
        running = asyncio.create_task(hub.run(), name="test.hub")
        await wait_for(lambda: _value(heard.of("heartbeat")), what="hub up")
        hub.alarm(hub.identity.group.alarm_events[0])
        await wait_for(
            lambda: _value(len(heard.of("alarm")) >= 3), within_s=15, what="two re-sends"
        )
        msg_ids = {json.loads(p)["msg_id"] for p in heard.of("alarm")}
        assert len(msg_ids) == 1
        ack = {"msg_id": msg_ids.pop(), "result": "accepted", "ts": datetime.now(UTC).isoformat()}
        await mqtt.publish(f"telecare/v1/{hub.device_id}/ack", ack)
        await wait_for(lambda: _value(not hub.unacknowledged), what="ack taken")
        hub.stop()
        await running
    assert [e["result"] for e in timeline.of(hub.device_id) if e["k"] == "ack"] == ["accepted"]


async def test_load_mode_publishes_valid_heartbeats_and_counts_what_the_broker_acked(
    broker: PrivateBroker, mqtt: Mqtt
) -> None:
    async with _listening(mqtt, "+") as heard:
        result = await run_load(
            LoadOptions(
                broker=broker.address,
                rate=300,
                duration_s=1,
                devices=40,
                qos=1,
                connections=2,
                prefix="ld",
            )
        )
        assert result.failed_workers == []
        assert result.sent > 0
        assert result.acked == result.sent
        await wait_for(
            lambda: _value(len(heard.of("heartbeat")) >= result.sent),
            what="every heartbeat delivered",
        )
    for payload in heard.of("heartbeat")[:50]:
        decode(MessageKind.HEARTBEAT, payload)


async def _value(value: Any) -> Any:
    return value
