"""What the alert benchmark measures with: NOTIFY receipt, loop pauses, a baseline loop."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from bench.alerts_fleet import Receive, device_id_of
from telecare.core.events import EVENTS_CHANNEL
from telecare.protocol.messages import Heartbeat


class NotifyListener(threading.Thread):
    """Receipt times of change events, off the event loop (NOTIFY is sent on commit)."""

    def __init__(self, database_url: str) -> None:
        super().__init__(name="bench-listen", daemon=True)
        self._url = database_url
        self.received: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            self.ready.set()
            while not self.stopping.is_set():
                for notify in conn.notifies(timeout=0.2):
                    self.received.append((time.time(), notify.payload))

    def created_alerts(self) -> dict[str, list[float]]:
        """Device -> receipt times of the NOTIFYs of heartbeat_missed alerts created for it."""
        out: dict[str, list[float]] = {}
        for at, payload in self.received:
            event = json.loads(payload)
            if (
                event["kind"] == "alert"
                and event["action"] == "created"
                and event.get("type") == "heartbeat_missed"
            ):
                out.setdefault(event["device_id"], []).append(at)
        return out


@dataclass
class Pauses:
    """Garbage-collector pauses and event-loop lag while the latency is measured."""

    gc_max_s: dict[int, float] = field(default_factory=dict)
    gc_count: dict[int, int] = field(default_factory=dict)
    loop_lag_max_s: float = 0.0
    _gc_started: float = 0.0

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        generation = info["generation"]
        took = time.perf_counter() - self._gc_started
        self.gc_max_s[generation] = max(self.gc_max_s.get(generation, 0.0), took)
        self.gc_count[generation] = self.gc_count.get(generation, 0) + 1

    async def watch_loop(self, stop: asyncio.Event) -> None:
        tick = 0.01
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(tick)
            self.loop_lag_max_s = max(self.loop_lag_max_s, time.perf_counter() - started - tick)


async def beat_steadily(
    receive: Receive,
    ids: list[str],
    beats: list[Heartbeat],
    order: list[int],
    rate: float,
    stop: asyncio.Event,
) -> tuple[int, float]:
    """Heartbeats at `rate` per second, in small batches, round the fleet in shuffled order."""
    sent = 0
    position = 0
    started = now = time.perf_counter()
    while not stop.is_set():
        received_at = datetime.now(UTC)
        now = time.perf_counter()
        due = math.ceil((now - started) * rate) - sent
        for _ in range(due):
            n = order[position]
            receive(ids[n], received_at, beats[n % 3])
            position += 1
            if position == len(order):
                position = 0
        sent += due
        await asyncio.sleep(0.002)
    return sent, now - started


# --- heartbeat throughput ---


class _Stamp:
    __slots__ = ("anchor",)

    def __init__(self) -> None:
        self.anchor = 0.0


class Baseline:
    """The floor of a heartbeat: the same call, a dict lookup and an attribute write."""

    def __init__(self, size: int) -> None:
        # Keys are other string objects than the callers' (as the engine's, read from the DB).
        self.devices = {device_id_of(n): _Stamp() for n in range(size)}

    def heartbeat_received(self, device_id: str, received_at: datetime, beat: Heartbeat) -> None:
        device = self.devices.get(device_id)
        if device is not None:
            device.anchor = time.monotonic()


def calls_per_s(
    receive: Receive, ids: Sequence[str], beats: Sequence[Heartbeat], s: float
) -> float:
    received_at = datetime.now(UTC)
    calls = 0
    chunk = 65_536
    started = time.perf_counter()
    while True:
        for start in range(0, len(ids), chunk):
            for device_id, beat in zip(
                ids[start : start + chunk], beats[start : start + chunk], strict=True
            ):
                receive(device_id, received_at, beat)
            calls += min(chunk, len(ids) - start)
            elapsed = time.perf_counter() - started
            if elapsed >= s:
                return calls / elapsed
