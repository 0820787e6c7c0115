"""Run many simulated devices in one TaskGroup, with progress reports and silencing."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from simulators.device import SimDevice
from simulators.stats import FleetStats

PROGRESS_EVERY_S = 5.0


def _say(text: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[simulate {stamp}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FleetPlan:
    silent: int = 0
    silent_after_s: float = 30.0
    duration_s: float | None = None


async def _report(stats: FleetStats, total: int) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        _say(stats.line(total))


async def _silence(devices: list[SimDevice], after_s: float) -> None:
    await asyncio.sleep(after_s)
    for device in devices:
        device.silent.set()
    names = ", ".join(d.device_id for d in devices)
    _say(f"now silent (connected, no heartbeats): {names}")


async def run_fleet(devices: list[SimDevice], stats: FleetStats, plan: FleetPlan) -> None:
    """Run until `plan.duration_s` elapses (if set) or the caller is cancelled."""
    silent = devices[-plan.silent :] if plan.silent > 0 else []
    if silent:
        _say(
            f"{len(silent)} device(s) will fall silent after {plan.silent_after_s:g}s: "
            + ", ".join(d.device_id for d in silent)
        )
    try:
        async with asyncio.timeout(plan.duration_s), asyncio.TaskGroup() as group:
            group.create_task(_report(stats, len(devices)))
            if silent:
                group.create_task(_silence(silent, plan.silent_after_s))
            for device in devices:
                group.create_task(device.run(), name=f"sim-{device.device_id}")
    except TimeoutError:
        _say(f"duration {plan.duration_s:g}s reached; stopping")
    finally:
        _say("final: " + stats.line(len(devices)))
