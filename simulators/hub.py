"""A virtual hub: one device's MQTT connection, heartbeats, battery, peripherals and alarms.

The scenario player steers a hub with plain method calls (`drop`, `restore`, `mains`, `alarm`,
...); the hub's own task does the rest on its schedule. Everything the backend could observe is
written to the shared Timeline as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from enum import Enum

from telecare.core.backoff import backoff_delay
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, MqttError, connect
from telecare.mqtt.packets import Will
from telecare.protocol.messages import AlarmEvent, MessageKind, topic_for
from telecare.simulators.fleet_stats import FleetStats
from telecare.simulators.hub_parts import HubIdentity, PendingAlarm, PeripheralState
from telecare.simulators.scenario_events import DropMode
from telecare.simulators.timeline import Timeline

log = logging.getLogger(__name__)

WILL_PAYLOAD = b'{"state":"offline","reason":"lwt"}'


class Want(Enum):
    UP = "up"
    HUNG = "hung"
    DOWN = "down"  # network lost
    OFF = "off"  # shut down cleanly
    DEAD = "dead"  # battery exhausted
    STOPPED = "stopped"  # the run is over


class Hub:
    def __init__(
        self,
        identity: HubIdentity,
        broker: BrokerAddress,
        timeline: Timeline,
        stats: FleetStats,
        rng: random.Random,
        connect_gate: asyncio.Semaphore | None = None,
    ) -> None:
        self.identity = identity
        self._connect_gate = connect_gate or asyncio.Semaphore(1)
        self.device_id = identity.device_id
        self._broker = identity.address(broker)
        self._timeline = timeline
        self._stats = stats
        self._rng = rng
        group = identity.group
        self._interval_s = identity.interval_s
        self.want = Want.UP
        self.network = identity.network
        self.power = "mains"
        self.battery = float(group.battery_pct)
        self._battery_at = time.monotonic()
        self.skew_s = 0.0
        self._seq = 0
        self._boot = self._new_boot()
        self._beat_now = True
        self._next_beat = time.monotonic()
        self._signal_dbm = -60 - rng.randrange(30)
        self._wake = asyncio.Event()
        self._pending: dict[str, PendingAlarm] = {}
        self._next_alarm = self._next_spontaneous_alarm(time.monotonic())
        self.peripherals = [
            PeripheralState(f"{p.kind}-{n}", p.kind, p.battery_pct)
            for n, p in enumerate(group.peripherals, start=1)
        ]
        self._conn: MqttConnection | None = None
        self._sessions = 0  # sessions under way so far (ack topic granted, status published)
        self._topics = {kind: topic_for(self.device_id, kind) for kind in MessageKind}

    # --- control, from the scenario player ---

    def drop(self, mode: DropMode) -> None:
        if self.want is not Want.UP:
            return
        self.want = {
            DropMode.HANG: Want.HUNG,
            DropMode.NETWORK: Want.DOWN,
            DropMode.SHUTDOWN: Want.OFF,
        }[mode]
        if mode is DropMode.HANG:
            self._timeline.add(self.device_id, "hang")
        self._wake.set()

    def restore(self, network: str | None = None) -> None:
        if network is not None:
            self.network = network
        if self.want in (Want.HUNG, Want.DOWN, Want.OFF):
            self.want = Want.UP
            self._beat_now = True
            self._wake.set()

    def mains(self, *, on: bool) -> None:
        self._update_battery(time.monotonic())
        if (self.power == "mains") == on:
            return
        self.power = "mains" if on else "battery"
        if on and self.want is Want.DEAD:
            self._seq, self._boot = 0, self._new_boot()  # it boots again
            self.want = Want.UP
        self.alarm(AlarmEvent.MAINS_RESTORE if on else AlarmEvent.MAINS_FAIL)
        self._beat_now = True
        self._wake.set()

    def alarm(self, event: AlarmEvent) -> None:
        msg_id = f"a{self._boot:08x}{self._next_seq():06d}"
        self._pending[msg_id] = PendingAlarm(msg_id, event, self._seq - 1, time.monotonic())
        self._wake.set()

    def peripheral(self, kind: str, *, lost: bool | None, battery_pct: int | None) -> None:
        now = time.monotonic()
        for p in self.peripherals:
            if p.kind == kind:
                if lost is not None:
                    p.lost_since = now if lost else None
                if battery_pct is not None:
                    p.battery_pct = battery_pct
        self._beat_now = True
        self._wake.set()

    def send_raw(self, topic: str, payload: bytes, *, qos: int = 1) -> bool:
        """Publish arbitrary bytes on this hub's connection (bad actors); False when it is down."""
        conn = self._conn
        if conn is None or not conn.is_open:
            return False
        conn.publish(topic, payload, qos=qos).add_done_callback(self._stats.puback)
        self._stats.messages_sent += 1
        return True

    @property
    def broker(self) -> BrokerAddress:
        """Where this hub connects, and with which certificate, if it has one."""
        return self._broker

    @property
    def unacknowledged(self) -> list[str]:
        """msg_ids of the alarms still waiting for the backend's ack."""
        return list(self._pending)

    def stop(self) -> None:
        self.want = Want.STOPPED
        self._wake.set()

    # --- the device's own life ---

    async def run(self) -> None:
        """Until stop(): connect, live, and reconnect (with back-off) whenever it should be up.

        The attempt count goes back to zero only once a session was under way (its ack topic
        granted, its status published): a broker that accepts the connection and then refuses
        the subscription, or drops every connection at once, is retried with growing,
        jittered delays like a refused connection, not in a tight loop by thousands of hubs."""
        attempt = 0
        while self.want is not Want.STOPPED:
            if self.want in (Want.DOWN, Want.OFF, Want.DEAD):
                await self._sleep(None)
                continue
            try:
                async with self._connect_gate:
                    conn = await connect(
                        self._broker,
                        client_id=self.device_id,
                        username=self.identity.username,
                        password=self.identity.password,
                        will=Will(self._topics[MessageKind.STATUS], WILL_PAYLOAD),
                        on_message=self._on_message,
                    )
            except MqttError as exc:
                attempt += 1
                self._stats.connect_failures += 1
                delay = backoff_delay(attempt)
                log.warning(
                    "hub connect failed device=%s error=%s retry_in_s=%.1f",
                    self.device_id,
                    exc,
                    delay,
                )
                await self._back_off(delay)
                continue
            sessions = self._sessions
            try:
                await self._session(conn)
            except MqttError as exc:
                if conn.is_open:
                    conn.abort()  # as a device whose session failed: the Last Will goes out
                if self._sessions > sessions:
                    attempt = 0  # it was under way: this is a new run of failures
                attempt += 1
                delay = backoff_delay(attempt)
                self._stats.reconnects += 1
                self._timeline.add(self.device_id, "offline", reason="lwt")
                log.warning(
                    "hub connection lost device=%s error=%s retry_in_s=%.1f",
                    self.device_id,
                    exc,
                    delay,
                )
                await self._back_off(delay)

    async def _back_off(self, delay: float) -> None:
        """Wait `delay` before connecting again; what the scenario asks meanwhile (an alarm,
        mains) does not cut it short, a hub told to go down or stop leaves it."""
        until = time.monotonic() + delay
        while self.want in (Want.UP, Want.HUNG) and time.monotonic() < until:
            await self._sleep(until)

    async def _session(self, conn: MqttConnection) -> None:
        self._stats.connected += 1
        self._conn = conn
        conn.closed.add_done_callback(lambda _: self._wake.set())
        try:
            await conn.subscribe(self._topics[MessageKind.ACK])
            online = json.dumps({"state": "online", "ts": self._ts()}).encode()
            self._timeline.add(self.device_id, "online")
            await conn.publish(self._topics[MessageKind.STATUS], online, retain=True)
            self._stats.messages_sent += 1
            self._sessions += 1
            while self.want in (Want.UP, Want.HUNG):
                wake_at = self._tick(conn, time.monotonic())
                await self._sleep(wake_at)
                if not conn.is_open:
                    raise MqttError("connection closed by the broker")
            await self._leave(conn)
        finally:
            self._conn = None
            self._stats.connected -= 1

    def _tick(self, conn: MqttConnection, now: float) -> float | None:
        """Do what is due; return when to wake next (None: only when told)."""
        death_at = self._update_battery(now)
        if self.want is Want.DEAD:
            return None
        if self.want is Want.HUNG:
            return death_at
        if self._beat_now or now >= self._next_beat:
            self._heartbeat(conn)
            self._beat_now = False
            spread = self._rng.uniform(0, self.identity.group.jitter)
            if self._seq == 1:  # first beat since boot: settle on a phase of our own
                spread = self._rng.uniform(0, 0.95)
            self._next_beat = now + self._interval_s * (1 - spread)
        if self._next_alarm is not None and now >= self._next_alarm:
            self.alarm(self._rng.choice(self.identity.group.alarm_events))
            self._next_alarm = self._next_spontaneous_alarm(now)
        for pending in self._pending.values():
            if now >= pending.due:
                self._send_alarm(conn, pending, now)
        times = [self._next_beat, *(p.due for p in self._pending.values())]
        times += [t for t in (self._next_alarm, death_at) if t is not None]
        return min(times)

    async def _leave(self, conn: MqttConnection) -> None:
        if self.want is Want.OFF:
            offline = json.dumps({"state": "offline", "ts": self._ts(), "reason": "shutdown"})
            self._timeline.add(self.device_id, "offline", reason="shutdown")
            with contextlib.suppress(MqttError):
                await conn.publish(self._topics[MessageKind.STATUS], offline.encode(), retain=True)
            await conn.disconnect()
        elif self.want in (Want.DOWN, Want.DEAD):
            self._timeline.add(self.device_id, "offline", reason="lwt")
            conn.abort()
        else:  # the run is over: leave quietly, as if the simulator was paused
            await conn.disconnect()

    async def _sleep(self, until: float | None) -> None:
        timeout = None if until is None else max(0.0, until - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _heartbeat(self, conn: MqttConnection) -> None:
        now = time.monotonic()
        periph = [p.wire(now) for p in self.peripherals]
        body = {
            "msg_id": f"h{self._boot:08x}{self._seq:06d}",
            "ts": self._ts(),
            "seq": self._next_seq(),
            "interval_s": self._interval_s,
            "power": self.power,
            "battery_pct": int(self.battery),
            "signal_dbm": self._signal_dbm,
            "network": self.network,
            "firmware": "sim-2.0",
        }
        if periph:
            body["peripherals"] = periph
        self._timeline.add(
            self.device_id,
            "hb",
            power=self.power,
            battery=int(self.battery),
            network=self.network,
            periph=[[p["id"], p["battery_pct"], p["last_seen_s"]] for p in periph],
        )
        sent = conn.publish(self._topics[MessageKind.HEARTBEAT], json.dumps(body).encode())
        sent.add_done_callback(self._stats.puback)
        self._stats.heartbeats_sent += 1
        self._stats.messages_sent += 1

    def _send_alarm(self, conn: MqttConnection, pending: PendingAlarm, now: float) -> None:
        if pending.attempts == 0:
            self._timeline.add(
                self.device_id, "alarm", msg_id=pending.msg_id, event=pending.event.value
            )
            self._stats.alarms_sent += 1
        else:
            self._stats.alarm_resends += 1
        body = {
            "msg_id": pending.msg_id,
            "ts": self._ts(),
            "seq": pending.seq,
            "event": pending.event.value,
            "detail": "simulated",
        }
        sent = conn.publish(self._topics[MessageKind.ALARM], json.dumps(body).encode())
        sent.add_done_callback(self._stats.puback)
        self._stats.messages_sent += 1
        pending.attempts += 1
        pending.due = now + self.identity.group.alarm_resend_s

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            ack = json.loads(payload)
            msg_id, result = ack["msg_id"], ack["result"]
        except (ValueError, KeyError, TypeError):
            log.warning("hub got an unreadable ack device=%s", self.device_id)
            return
        if self._pending.pop(msg_id, None) is not None:
            self._timeline.add(self.device_id, "ack", msg_id=msg_id, result=result)
            self._stats.alarms_acked += 1

    def _update_battery(self, now: float) -> float | None:
        """Drain or charge to `now`; on battery, return when it will be empty."""
        elapsed, self._battery_at = now - self._battery_at, now
        group = self.identity.group
        if self.power == "mains":
            self.battery = min(100.0, self.battery + 100 * elapsed / group.charge_s)
            return None
        self.battery = max(0.0, self.battery - 100 * elapsed / group.battery_life_s)
        if self.battery <= 0 and self.want in (Want.UP, Want.HUNG):
            self.want = Want.DEAD
            self._wake.set()
            return None
        return now + group.battery_life_s * self.battery / 100

    def _next_spontaneous_alarm(self, now: float) -> float | None:
        mean = self.identity.group.alarm_every_s
        return None if mean is None else now + self._rng.expovariate(1 / mean)

    def _new_boot(self) -> int:
        """A boot id for msg_ids: unique across runs too (a seeded rng alone would repeat)."""
        return (self._rng.getrandbits(32) ^ time.time_ns() // 1_000_000) & 0xFFFFFFFF

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _ts(self) -> str:
        stamp = datetime.now(UTC) + timedelta(seconds=self.skew_s)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
