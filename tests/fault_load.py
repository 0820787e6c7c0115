"""The load a fault test holds, and what counts as sent.

- `HeartbeatLoad`: QoS 1 heartbeats for registered devices at a steady rate over a few
  connections (reconnecting when the broker goes). A heartbeat counts as **sent** once the
  broker PUBACKed it: from then on it is the backend's to keep. Its `seq` is a run-wide counter,
  so "everything sent up to n is stored" is one query.
- `AlarmFleet`: virtual hubs (simulators.hub.Hub), each with its own connection, that re-send an
  unacknowledged alarm with the same msg_id until the backend acknowledges it, as devices do.
  Alarms are raised round-robin at a steady rate. Every first send and every first ack is in
  the hubs' timeline, with its time.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telecare.core.backoff import backoff_delay
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, MqttError, connect
from telecare.protocol.messages import AlarmEvent, MessageKind, topic_for
from telecare.simulators.fleet_stats import FleetStats
from telecare.simulators.hub import Hub
from telecare.simulators.hub_parts import HubIdentity
from telecare.simulators.scenario import parse_scenario
from telecare.simulators.timeline import Timeline

_TICK_S = 0.02


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class HeartbeatLoad:
    broker: BrokerAddress
    device_ids: list[str]
    rate: float
    connections: int = 4
    sent: list[tuple[float, int]] = field(default_factory=list)  # (PUBACK time, seq)
    not_taken: int = 0  # published, but the connection went before the broker's PUBACK
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _running: bool = True

    def stop(self) -> None:
        self._running = False

    def sent_by(self, at: float) -> int:
        """How many heartbeats the broker had taken by time `at`."""
        return sum(1 for acked_at, _ in self.sent if acked_at <= at)

    def last_seq_by(self, at: float) -> int:
        return max((seq for acked_at, seq in self.sent if acked_at <= at), default=0)

    async def run(self) -> None:
        share = self.rate / self.connections
        async with asyncio.TaskGroup() as tg:
            for n in range(self.connections):
                ids = self.device_ids[n :: self.connections]
                tg.create_task(self._publisher(n, ids, share), name=f"test.heartbeats[{n}]")

    async def _publisher(self, n: int, device_ids: list[str], rate: float) -> None:
        attempt = 0
        devices = itertools.cycle(device_ids)
        while self._running:
            try:
                conn = await connect(self.broker, client_id=f"fault-load-{n}-{id(self)}")
            except MqttError:
                attempt += 1
                await asyncio.sleep(backoff_delay(attempt, cap_s=2))
                continue
            attempt = 0
            try:
                await self._publish(conn, devices, rate)
            except MqttError:
                pass
            finally:
                conn.abort()

    async def _publish(
        self, conn: MqttConnection, devices: itertools.cycle[str], rate: float
    ) -> None:
        started, published = time.monotonic(), 0
        while self._running and conn.is_open:
            due = int((time.monotonic() - started) * rate) - published
            for _ in range(due):
                device_id, seq = next(devices), next(self._seq)
                body = {
                    "msg_id": f"f{seq}",
                    "ts": _now(),
                    "seq": seq,
                    "interval_s": 60,
                    "power": "mains",
                    "battery_pct": 90,
                    "signal_dbm": -70,
                    "network": "4g",
                }
                topic = topic_for(device_id, MessageKind.HEARTBEAT)
                done = conn.publish(topic, json.dumps(body).encode(), qos=1)
                done.add_done_callback(functools.partial(self._taken, seq))
                published += 1
            await conn.drain()
            await asyncio.sleep(_TICK_S)

    def _taken(self, seq: int, done: asyncio.Future[None]) -> None:
        if done.exception() is None:
            self.sent.append((time.time(), seq))
        else:
            self.not_taken += 1


class AlarmFleet:
    """`hubs` virtual hubs; `run()` raises `rate` alarms a second among them until `stop()`."""

    def __init__(
        self, broker: BrokerAddress, device_ids: list[str], rate: float, resend_s: float = 2.0
    ) -> None:
        scenario = parse_scenario(
            {
                "name": "fault",
                "duration_s": 3600,
                "groups": [
                    {
                        "name": "hubs",
                        "devices": len(device_ids),
                        "heartbeat_interval_s": 60,
                        "alarm_resend_s": resend_s,
                    }
                ],
            },
            time_scale=1,
        )
        group = scenario.groups[0]
        self.timeline = Timeline()
        stats = FleetStats(devices=len(device_ids))
        self.hubs = [
            Hub(
                HubIdentity(device_id, None, group, "4g", 60),
                broker,
                self.timeline,
                stats,
                random.Random(n),
                asyncio.Semaphore(16),
            )
            for n, device_id in enumerate(device_ids)
        ]
        self.rate = rate
        self._raising = True

    def stop_raising(self) -> None:
        self._raising = False

    def pending(self) -> int:
        return sum(len(hub.unacknowledged) for hub in self.hubs)

    def sent(self) -> dict[tuple[str, str], float]:
        """(device_id, msg_id) of every alarm raised, with the time of its first send."""
        return {
            (device_id, e["msg_id"]): e["t"]
            for device_id, events in self.timeline.events.items()
            for e in events
            if e["k"] == "alarm"
        }

    def acks(self) -> dict[tuple[str, str], tuple[float, str]]:
        """The first ack each alarm got: its time and result."""
        return {
            (device_id, e["msg_id"]): (e["t"], e["result"])
            for device_id, events in self.timeline.events.items()
            for e in events
            if e["k"] == "ack"
        }

    def stop(self) -> None:
        """The hubs disconnect and `run()` returns."""
        self._raising = False
        for hub in self.hubs:
            hub.stop()

    async def run(self) -> None:
        """Hubs run (and re-send) until `stop()`; alarms are raised until `stop_raising()`."""
        async with asyncio.TaskGroup() as tg:
            for hub in self.hubs:
                tg.create_task(hub.run(), name=f"test.hub[{hub.device_id}]")
            started, raised = time.monotonic(), 0
            hubs = itertools.cycle(self.hubs)
            while self._raising:
                due = int((time.monotonic() - started) * self.rate) - raised
                for _ in range(due):
                    next(hubs).alarm(AlarmEvent.PENDANT)
                    raised += 1
                await asyncio.sleep(_TICK_S)
