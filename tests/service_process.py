"""`telecare run` as a separate process, configured by TELECARE_* variables, so a fault test can
kill it with SIGKILL, watch its memory and read its /metrics like a monitoring system would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.brokers import free_port


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text as {'name{labels}': value}, comments left out."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class ServiceProcess:
    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        roles: str = "ingest,alerts,api",
        *,
        tree: Path | None = None,  # another checkout's code (a benchmark's "before")
    ):
        self.port = free_port()
        self._env = {
            **os.environ,
            **env,
            "TELECARE_API_PORT": str(self.port),
            "TELECARE_API_HOST": "127.0.0.1",
        }
        self._log_path = log_path
        self.roles = roles
        self._tree = tree
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, *, ready_within_s: float = 60) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        self.process = self._spawn()
        deadline = time.monotonic() + ready_within_s
        while not await self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"telecare run exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"telecare run not ready within {ready_within_s} s")
            await asyncio.sleep(0.1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "telecare", "run", "--only", self.roles],
                env=self._env,
                cwd=self._tree,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{self.url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=10) as client:
            return parse_metrics((await client.get(f"{self.url}/metrics")).text)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL: no flush, no clean disconnect, nothing the process could still do."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM and wait: every role stops in order."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_text(self) -> str:
        return self._log_path.read_text(errors="replace")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
