"""One simulated device: an MQTT client that heartbeats, raises alarms and reconnects."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from core.backoff import backoff_delay
from core.mqtt_url import BrokerAddress
from core.protocol import Alarm, AlarmEvent, Heartbeat, MessageKind, Status, topic_for
from simulators.stats import FleetStats

log = logging.getLogger(__name__)

ALARM_RESEND_S = 5.0
_SIM_EVENTS = (AlarmEvent.PENDANT, AlarmEvent.PULL_CORD, AlarmEvent.FALL, AlarmEvent.TEST)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeviceConfig:
    device_id: str
    password: str | None
    interval_s: int
    alarm_every_s: float | None = None


@dataclass
class _Pending:
    payload: bytes
    due: float
    attempts: int = 0


@dataclass
class SimDevice:
    config: DeviceConfig
    broker: BrokerAddress
    stats: FleetStats
    silent: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: int = 0
    _pending: dict[str, _Pending] = field(default_factory=dict)

    @property
    def device_id(self) -> str:
        return self.config.device_id

    def _topic(self, kind: MessageKind) -> str:
        return topic_for(self.device_id, kind)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting with back-off."""
        attempt = 0
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                attempt += 1
                self.stats.reconnects += 1
                delay = backoff_delay(attempt)
                log.warning("%s: broker lost (%s); retry in %.1fs", self.device_id, exc, delay)
                await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        will = Status(state="offline", reason="lwt").model_dump_json(exclude_none=True)
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.device_id,
            username=self.device_id,
            password=self.config.password,
            tls_context=self.broker.tls_context(),
            will=aiomqtt.Will(self._topic(MessageKind.STATUS), will, qos=1, retain=True),
        )

    async def _session(self) -> None:
        async with self._client() as client:
            self.stats.connected.add(self.device_id)
            listener = asyncio.create_task(self._listen_acks(client))
            try:
                await client.subscribe(self._topic(MessageKind.ACK), qos=1)
                online = Status(state="online", ts=_now()).model_dump_json(exclude_none=True)
                await client.publish(self._topic(MessageKind.STATUS), online, qos=1, retain=True)
                await self._publish_loop(client, listener)
            finally:
                self.stats.connected.discard(self.device_id)
                listener.cancel()

    async def _listen_acks(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if not isinstance(message.payload, bytes | str):
                continue
            try:
                msg_id = json.loads(message.payload).get("msg_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(msg_id, str) and self._pending.pop(msg_id, None) is not None:
                self.stats.alarms_acked += 1

    async def _publish_loop(self, client: aiomqtt.Client, listener: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        next_alarm = self._next_alarm_at(loop.time())
        while not listener.done():
            now = loop.time()
            if now >= next_beat:
                if not self.silent.is_set():
                    await self._heartbeat(client)
                jitter = random.uniform(-0.05, 0.05) * self.config.interval_s  # noqa: S311
                next_beat = now + self.config.interval_s + jitter
            if next_alarm is not None and now >= next_alarm:
                self._raise_alarm(now)
                next_alarm = self._next_alarm_at(now)
            for msg_id, pending in list(self._pending.items()):
                if now >= pending.due:
                    await client.publish(self._topic(MessageKind.ALARM), pending.payload, qos=1)
                    pending.attempts += 1
                    if pending.attempts > 1:
                        self.stats.alarm_resends += 1
                    if msg_id in self._pending:
                        pending.due = now + ALARM_RESEND_S
            wake = min([next_beat, *(p.due for p in self._pending.values())])
            if next_alarm is not None:
                wake = min(wake, next_alarm)
            await asyncio.sleep(max(0.05, min(wake - loop.time(), 1.0)))
        listener.result()  # re-raise the broker error that ended the listener

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        beat = Heartbeat(
            msg_id=uuid.uuid4().hex,
            ts=_now(),
            seq=self._next_seq(),
            interval_s=self.config.interval_s,
            power="mains",
            battery_pct=random.randint(80, 100),  # noqa: S311
            signal_dbm=random.randint(-95, -60),  # noqa: S311
            network="4g",
            firmware="sim-1.0",
        )
        await client.publish(self._topic(MessageKind.HEARTBEAT), beat.model_dump_json(), qos=1)
        self.stats.heartbeats_sent += 1

    def _next_alarm_at(self, now: float) -> float | None:
        mean = self.config.alarm_every_s
        return None if mean is None else now + random.expovariate(1.0 / mean)

    def _raise_alarm(self, now: float) -> None:
        alarm = Alarm(
            msg_id=uuid.uuid4().hex,
            ts=_now(),
            seq=self._next_seq(),
            event=random.choice(_SIM_EVENTS),  # noqa: S311
            detail="simulated",
        )
        self._pending[alarm.msg_id] = _Pending(
            alarm.model_dump_json(exclude_none=True).encode(), now
        )
        self.stats.alarms_sent += 1
        log.debug("%s: alarm %s (%s)", self.device_id, alarm.event.value, alarm.msg_id)
