"""Measuring one window of a benchmark phase: what was published, what was delivered (or
committed), what the ingest received and did not write, and the cores each part used."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from bench.system_cpu import CpuMeter

Count = Callable[[], Awaitable[int]]
Losses = Callable[[], Awaitable[dict[str, int]]]
Say = Callable[[str], None]


class Publishers(Protocol):
    """The load of a window: simulators.load's LoadWorkers, or a fleet of devices."""

    @property
    def sent(self) -> int: ...

    def stop(self) -> None: ...


@dataclass
class Throughput:
    what: str
    published_per_s: float  # PUBACKed by the broker
    delivered_per_s: float  # counted by the raw subscriber, or committed in the database
    window_s: float
    slowest_5s: float
    fastest_5s: float
    cpu: dict[str, float]
    machine_cores: float
    # heartbeats the ingest received in the window but did not write, by reason (its /metrics)
    not_written: dict[str, int] = field(default_factory=dict)


async def ingest_losses(url: str) -> dict[str, int]:
    """Heartbeats the ingest received and did not write, by reason, since it started."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    losses: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
        metric = name.partition("{")[0]
        if metric == "telecare_messages_received_total" and labels["kind"] == "heartbeat_duplicate":
            losses["repeated msg_id"] = int(float(value))
        elif metric == "telecare_write_dropped_total" and labels["what"] == "heartbeats":
            losses[labels["reason"]] = int(float(value))
    return losses


class Window:
    """Opened with `open()`; `close()` gives the growth of everything since as a Throughput."""

    def __init__(
        self, what: str, publishers: Publishers, count: Count, cpu: CpuMeter, losses: Losses | None
    ) -> None:
        self.what = what
        self.publishers = publishers
        self.count = count
        self._cpu = cpu
        self._losses = losses
        self._lost: dict[str, int] = {}
        self.first = self._sent = 0
        self.opened_at = 0.0
        self.cores = ""  # the cores each part used, described, once closed

    async def open(self) -> Window:
        self._lost = await self._losses() if self._losses else {}
        self.first, self._sent = await self.count(), self.publishers.sent
        self.opened_at = time.monotonic()
        self._cpu.start()
        return self

    async def close(
        self, last: int | None = None, at: float | None = None, steps: list[float] | None = None
    ) -> Throughput:
        """`last` counted at `at` (counted now when not given); `steps`: the rates of its parts."""
        if last is None or at is None:
            last, at = await self.count(), time.monotonic()
        shares = self._cpu.shares()
        self.cores = shares.describe()
        elapsed = at - self.opened_at
        lost = await self._losses() if self._losses else {}
        grown = {reason: n - self._lost.get(reason, 0) for reason, n in lost.items()}
        return Throughput(
            self.what,
            published_per_s=(self.publishers.sent - self._sent) / elapsed,
            delivered_per_s=(last - self.first) / elapsed,
            window_s=elapsed,
            slowest_5s=min(steps) if steps else float("nan"),
            fastest_5s=max(steps) if steps else float("nan"),
            cpu={name: round(cores, 2) for name, cores in shares.cores.items()},
            machine_cores=round(shares.machine, 2),
            not_written={reason: n for reason, n in grown.items() if n},
        )


async def sustained(window: Window, say: Say, *, warmup_s: float, window_s: float) -> Throughput:
    """After `warmup_s`, the count's growth over `window_s` (and every 5 s of it)."""
    await asyncio.sleep(warmup_s)
    await window.open()
    steps: list[float] = []
    last, t_last = window.first, window.opened_at
    while (now := time.monotonic()) - window.opened_at < window_s - 0.01:
        await asyncio.sleep(min(5.0, window_s - (now - window.opened_at)))
        got, t_got = await window.count(), time.monotonic()
        steps.append((got - last) / (t_got - t_last))
        say(
            f"{window.what}: {steps[-1]:,.0f}/s over the last {t_got - t_last:.0f} s"
            f" (published {window.publishers.sent:,})"
        )
        last, t_last = got, t_got
    result = await window.close(last, t_last, steps)
    say(f"{window.what}: {result.delivered_per_s:,.0f}/s sustained; cores: {window.cores}")
    if result.not_written:
        say(f"{window.what}: received but not written: {result.not_written}")
    return result
