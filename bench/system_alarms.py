"""The alarm path under load: from a device's PUBLISH to its `accepted` ack, and to the alarm on
the operators' event stream.

Each probe is a registered device with its own connection (client id = device id, as a hub
connects; with its own certificate on a broker that enforces identity) subscribed to its ack
topic. Alarms are raised round-robin across the probes at a
steady rate; each one's publish time is taken just before its PUBLISH is written, its ack time
when the ack is read, and its event time when an `alarm` event with its msg_id is read from
`GET /api/v1/events` (one stream, as a console holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, connect
from telecare.protocol.messages import MessageKind, topic_for


@dataclass
class AlarmTimes:
    published: dict[str, float] = field(default_factory=dict)  # msg_id -> publish time
    acked: dict[str, tuple[float, str]] = field(default_factory=dict)  # msg_id -> (time, result)
    streamed: dict[str, float] = field(default_factory=dict)  # msg_id -> event time

    def ack_ms(self) -> list[float]:
        return [
            (at - self.published[msg_id]) * 1000
            for msg_id, (at, result) in self.acked.items()
            if result == "accepted" and msg_id in self.published
        ]

    def stream_ms(self) -> list[float]:
        return [
            (at - self.published[msg_id]) * 1000
            for msg_id, at in self.streamed.items()
            if msg_id in self.published
        ]

    def not_accepted(self) -> int:
        return sum(1 for _, result in self.acked.values() if result != "accepted")


class AlarmProbes:
    """`async with AlarmProbes(...) as probes: await probes.raise_for(seconds)`."""

    def __init__(
        self, address_for: Callable[[str], BrokerAddress], device_ids: list[str], rate: float
    ) -> None:
        self._address_for = address_for  # where and as whom a probe device connects
        self._device_ids = device_ids
        self._rate = rate
        self._conns: dict[str, MqttConnection] = {}
        self._run = f"{time.time_ns():x}"
        self._raising = True
        self._all_answered = asyncio.Event()
        self.times = AlarmTimes()

    async def __aenter__(self) -> AlarmProbes:
        for device_id in self._device_ids:
            conn = await connect(
                self._address_for(device_id), client_id=device_id, on_message=self._on_ack
            )
            await conn.subscribe(topic_for(device_id, MessageKind.ACK), 1)
            self._conns[device_id] = conn
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(conn.disconnect() for conn in self._conns.values()))

    def _on_ack(self, topic: str, payload: bytes) -> None:
        at = time.perf_counter()
        ack = json.loads(payload)
        self.times.acked.setdefault(ack["msg_id"], (at, ack["result"]))
        if not self._raising and len(self.times.acked) >= len(self.times.published):
            self._all_answered.set()

    async def raise_for(self, seconds: float) -> None:
        """Raise alarms at the rate for `seconds`, then wait up to 10 s for the last acks."""
        devices = itertools.cycle(self._device_ids)
        started = time.perf_counter()
        for n in itertools.count():
            due_at = started + n / self._rate
            if due_at - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due_at - time.perf_counter()))
            device_id = next(devices)
            msg_id = f"bench-{self._run}-{n}"
            body = {
                "msg_id": msg_id,
                "ts": datetime.now(UTC).isoformat(),
                "seq": n,
                "event": "pendant",
                "detail": "benchmark probe",
            }
            self.times.published[msg_id] = time.perf_counter()
            self._conns[device_id].publish(
                topic_for(device_id, MessageKind.ALARM), json.dumps(body).encode(), qos=1
            )
        self._raising = False
        if len(self.times.acked) < len(self.times.published):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_answered.wait(), timeout=10)


async def watch_alarm_events(api_url: str, token: str, times: AlarmTimes) -> None:
    """Read the event stream until cancelled, noting when each probe's alarm appears on it."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    timeout = httpx.Timeout(10, read=None)
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", f"{api_url}/api/v1/events", headers=headers) as response,
    ):
        response.raise_for_status()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "alarm":
                at = time.perf_counter()
                msg_id = json.loads(line.partition(":")[2])["item"]["msg_id"]
                times.streamed.setdefault(msg_id, at)
            elif line == "":
                event = ""
