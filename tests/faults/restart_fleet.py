"""A device fleet for restart tests, and the truth it implies.

Each device is one connection of the lean client, with its Last Will (`offline`, retained, QoS 1)
as devices have, a retained `online` status on connecting, and a QoS 1 heartbeat every
`interval_s`. The test changes devices (silent, on battery, dropped with the Last Will, back)
while the service runs or while it is down, and every change is recorded with the span of time
in which the backend can have heard it: a message the broker took while the service was down is
heard between the next start and the moment that start was ready.

`Truth` answers what a correct engine shows at a moment (open alerts per device, with devices
near a boundary left out) and whether an alert raised at a moment was justified.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, MqttError, connect
from telecare.mqtt.packets import Will
from telecare.protocol.messages import MessageKind, topic_for

WILL_PAYLOAD = b'{"state":"offline","reason":"lwt"}'
HBM, CONN, MAINS = "heartbeat_missed", "connection_lost", "mains_power_lost"
_TICK_S = 0.05


@dataclass
class Heard:
    """A message and the span in which the backend heard it (`hi` is None until known)."""

    kind: str  # "beat", "will", "online"
    at: float  # when the device sent it (PUBACK time for heartbeats), wall-clock seconds
    lo: float
    hi: float | None
    power: str = "mains"


@dataclass
class Epoch:
    spawned_at: float
    ready_at: float | None = None
    stopped_at: float | None = None


@dataclass
class FleetDevice:
    device_id: str
    next_beat_at: float
    power: str = "mains"
    beating: bool = True
    conn: MqttConnection | None = None
    seq: int = 0
    heard: list[Heard] = field(default_factory=list)


class Fleet:
    def __init__(self, broker: BrokerAddress, device_ids: Iterable[str], interval_s: float) -> None:
        self.broker = broker
        self.interval_s = interval_s
        now = time.time()
        ids = list(device_ids)
        self.devices = {
            d: FleetDevice(d, now + interval_s * (n + 1) / len(ids)) for n, d in enumerate(ids)
        }
        self.epochs: list[Epoch] = []
        self._task: asyncio.Task[None] | None = None
        self.unacked = 0

    # --- the service's lifetimes, for when a message can have been heard ---

    def spawned(self) -> None:
        self.epochs.append(Epoch(time.time()))

    def ready(self) -> None:
        epoch = self.epochs[-1]
        epoch.ready_at = time.time()
        for device in self.devices.values():
            for heard in device.heard:
                if heard.hi is None:
                    heard.lo = max(heard.lo, epoch.spawned_at)
                    heard.hi = epoch.ready_at
                    heard.lo = min(heard.lo, heard.hi)

    def stopping(self) -> None:
        self.epochs[-1].stopped_at = time.time()

    def _up(self) -> bool:
        epoch = self.epochs[-1] if self.epochs else None
        return epoch is not None and epoch.ready_at is not None and epoch.stopped_at is None

    def _record(self, device: FleetDevice, kind: str, at: float, power: str = "mains") -> None:
        hi = at + 0.5 if self._up() else None
        device.heard.append(Heard(kind, at, at, hi, power))

    # --- devices ---

    async def start(self) -> None:
        limit = asyncio.Semaphore(20)

        async def one(device: FleetDevice) -> None:
            async with limit:
                await self._connect(device)

        await asyncio.gather(*(one(d) for d in self.devices.values()))
        self._task = asyncio.create_task(self._beat_forever(), name="test.fleet")

    async def _connect(self, device: FleetDevice) -> None:
        status = topic_for(device.device_id, MessageKind.STATUS)
        device.conn = await connect(
            self.broker,
            client_id=device.device_id,
            will=Will(status, WILL_PAYLOAD, qos=1, retain=True),
            keepalive_s=30,
        )
        online = json.dumps({"state": "online"}).encode()
        await device.conn.publish(status, online, qos=1, retain=True)
        self._record(device, "online", time.time())

    async def _beat_forever(self) -> None:
        while True:
            now = time.time()
            for device in self.devices.values():
                if device.beating and device.conn is not None and now >= device.next_beat_at:
                    self.beat(device)
            await asyncio.sleep(_TICK_S)

    def beat(self, device: FleetDevice) -> None:
        """A heartbeat now; the next one an interval later."""
        assert device.conn is not None
        device.next_beat_at = time.time() + self.interval_s
        device.seq += 1
        body = {
            "msg_id": f"{device.device_id}-{device.seq}",
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "seq": device.seq,
            "interval_s": int(self.interval_s),
            "power": device.power,
            "battery_pct": 90,
            "signal_dbm": -70,
            "network": "4g",
        }
        topic = topic_for(device.device_id, MessageKind.HEARTBEAT)
        try:
            done = device.conn.publish(topic, json.dumps(body).encode(), qos=1)
        except MqttError:
            self.unacked += 1
            return
        power = device.power

        def taken(future: asyncio.Future[None]) -> None:
            if future.cancelled() or future.exception() is not None:
                self.unacked += 1
            else:
                self._record(device, "beat", time.time(), power)

        done.add_done_callback(taken)

    def silence(self, device: FleetDevice) -> None:
        device.beating = False

    def drop(self, device: FleetDevice) -> None:
        """The connection dies without DISCONNECT: the broker publishes the Last Will."""
        device.beating = False
        assert device.conn is not None
        device.conn.abort()
        device.conn = None
        self._record(device, "will", time.time())

    async def come_back(self, device: FleetDevice) -> None:
        """Silent or dropped: connected again and heartbeating, the first heartbeat now."""
        if device.conn is None:
            await self._connect(device)
        device.beating = True
        self.beat(device)

    async def reconnect_all(self) -> None:
        """After the broker came back: every device connects again, as devices do, and those
        that were heartbeating send a heartbeat at once."""
        limit = asyncio.Semaphore(20)

        async def one(device: FleetDevice) -> None:
            async with limit:
                if device.conn is not None and device.conn.is_open:
                    return
                device.conn = None
                while device.conn is None:
                    try:
                        await self._connect(device)
                    except MqttError:
                        await asyncio.sleep(0.2)
                if device.beating:
                    self.beat(device)

        await asyncio.gather(*(one(d) for d in self.devices.values()))

    def switch_power(self, device: FleetDevice, power: str) -> None:
        device.power = power
        self.beat(device)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for device in self.devices.values():
            if device.conn is not None:
                await device.conn.disconnect()


@dataclass(frozen=True)
class Verdict:
    expected: dict[str, frozenset[str]]  # device -> alert types that must be open
    unsure: dict[str, frozenset[str]]  # device -> types either way at this moment


class Truth:
    """What a correct engine shows, from what the fleet sent and when it can have been heard."""

    def __init__(self, fleet: Fleet, window_s: float, margin_s: float = 1.5) -> None:
        self.fleet = fleet
        self.window_s = window_s
        self.margin_s = margin_s

    def at(self, t: float) -> Verdict:
        expected: dict[str, frozenset[str]] = {}
        unsure: dict[str, frozenset[str]] = {}
        for device_id, device in self.fleet.devices.items():
            sure, maybe = self._device(device.heard, t)
            expected[device_id] = frozenset(sure)
            unsure[device_id] = frozenset(maybe)
        return Verdict(expected, unsure)

    def _device(self, heard: list[Heard], t: float) -> tuple[set[str], set[str]]:
        sure: set[str] = set()
        maybe: set[str] = set()
        done = [h for h in heard if h.hi is not None and h.hi <= t]  # surely heard by t
        possible = [h for h in heard if h.lo <= t]  # perhaps heard by t
        for kind, state in ((CONN, _offline), (MAINS, _on_battery)):
            a, b = state(done), state(possible)
            if a and b:
                sure.add(kind)
            elif a or b:
                maybe.add(kind)
        beats_done = [h for h in done if h.kind == "beat"]
        beats_possible = [h for h in possible if h.kind == "beat"]
        latest = beats_possible[-1].hi if beats_possible else None
        if latest is None:
            latest = math.inf
        earliest = beats_done[-1].lo if beats_done else -math.inf
        if beats_possible and t > latest + self.window_s + self.margin_s:
            sure.add(HBM)
        elif not (beats_done and t < earliest + self.window_s - self.margin_s):
            maybe.add(HBM)
        return sure, maybe

    def justified(self, device_id: str, kind: str, raised_at: float) -> int | None:
        """The index of the episode (a message that began the condition) this raise belongs
        to, or None if nothing the device sent justified raising it then."""
        heard = self.fleet.devices[device_id].heard
        tol = 0.5
        for n, h in enumerate(heard):
            if kind == HBM and h.kind == "beat":
                nxt = next((x for x in heard[n + 1 :] if x.kind == "beat"), None)
                end = math.inf if nxt is None else nxt.at + tol
                if h.lo + self.window_s - tol <= raised_at <= end:
                    return n
            elif kind == CONN and h.kind == "will":
                nxt = next((x for x in heard[n + 1 :] if x.kind != "will"), None)
                end = math.inf if nxt is None else nxt.at + tol
                if h.at - tol <= raised_at <= end:
                    return n
            elif kind == MAINS and h.kind == "beat" and h.power == "battery":
                prev = [x for x in heard[:n] if x.kind == "beat"]
                if prev and prev[-1].power == "battery":
                    continue  # not where the battery episode began
                nxt = next(
                    (x for x in heard[n + 1 :] if x.kind == "beat" and x.power == "mains"), None
                )
                end = math.inf if nxt is None else nxt.at + tol
                if h.at - tol <= raised_at <= end:
                    return n
        return None


def _offline(heard: list[Heard]) -> bool:
    """The newest will is later than the newest heartbeat or online status."""
    for h in reversed(heard):
        if h.kind == "will":
            return True
        if h.kind in ("beat", "online"):
            return False
    return False


def _on_battery(heard: list[Heard]) -> bool:
    for h in reversed(heard):
        if h.kind == "beat":
            return h.power == "battery"
    return False
