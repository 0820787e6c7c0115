"""Where the machine's cores went during a phase: CPU seconds per part of the system, read from
/proc (user + system time), divided by the phase's wall time."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

Pids = Callable[[], list[int]]


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0  # gone: what it used is lost with it
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def named(comm: str) -> Pids:
    """Every process whose command name is `comm` (e.g. all of PostgreSQL's)."""

    def pids() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "comm").read_text().strip() == comm:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    return pids


def with_children(pids: Pids) -> Pids:
    return lambda: [p for pid in pids() for p in (pid, *_children(pid))]


def _machine_s() -> tuple[float, float]:
    """CPU seconds busy, and waiting for the disk, of the whole machine so far."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / _TICK, iowait / _TICK


@dataclass(frozen=True)
class CpuShares:
    cores: dict[str, float]  # part -> cores busy on average
    machine: float  # every process of the machine
    iowait: float  # cores idle while a process waited for the disk

    def describe(self) -> str:
        parts = ", ".join(f"{name} {cores:.2f}" for name, cores in self.cores.items())
        return (
            f"{parts}; machine {self.machine:.2f} of {os.cpu_count()} (io wait {self.iowait:.2f})"
        )


class CpuMeter:
    """`start()` then `shares()`: cores used by each part since the start."""

    def __init__(self, parts: dict[str, Pids]) -> None:
        self._parts = parts
        self._start: tuple[float, tuple[float, float], dict[str, dict[int, float]]] | None = None

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: _cpu_s(pid) for pid in pids()} for name, pids in self._parts.items()}

    def start(self) -> None:
        self._start = (time.monotonic(), _machine_s(), self._read())

    def shares(self) -> CpuShares:
        assert self._start is not None, "not started"
        started, busy, before = self._start
        elapsed = time.monotonic() - started
        now = self._read()
        cores = {
            name: sum(cpu - before[name].get(pid, 0.0) for pid, cpu in now[name].items()) / elapsed
            for name in self._parts
        }
        busy_now, iowait_now = _machine_s()
        return CpuShares(cores, (busy_now - busy[0]) / elapsed, (iowait_now - busy[1]) / elapsed)


async def py_spy(pid: int, out: Path, seconds: float, say: Callable[[str], None]) -> None:
    """Samples the Python process `pid` for `seconds` into `out` (folded stacks): where its
    CPU went, by function."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await process.wait()
    say(f"profile of pid {pid}: {out}")
