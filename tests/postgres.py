"""A private PostgreSQL 15 cluster for fault tests: started, stopped, paused and slowed at will.

The shared cluster on 5432 serves every checkout's tests and must never be stopped, so a test
that takes the database away initdb's its own in a temporary directory, on a free port, from the
installed binaries. PostgreSQL refuses to run as root: initdb and postgres run as the
`postgres` OS user (`runuser`), in a directory that user owns.

`fsync = off` keeps the cluster cheap on a shared disk; it loses nothing when the server is
killed (the kernel still holds what it wrote), only when the machine is.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from tests.brokers import free_port, port_open

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"


def _as_postgres(*command: str | Path) -> list[str]:
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    return [*prefix, *(str(part) for part in command)]


class PrivatePostgres:
    """`with PrivatePostgres() as pg:` runs a cluster until the block ends.

    `timescaledb=False` leaves the extension out of shared_preload_libraries: the plain
    PostgreSQL a deployment without TimescaleDB has (CREATE EXTENSION then fails).
    """

    def __init__(self, *, timescaledb: bool = True) -> None:
        self.port = free_port()
        self._timescaledb = timescaledb
        self._dir = Path(tempfile.mkdtemp(prefix="telecare-pg-"))
        self._data = self._dir / "data"
        self._slow: threading.Thread | None = None
        self._slow_stop = threading.Event()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        return self._dir / "postgres.log"

    def _init(self) -> None:
        user = pwd.getpwnam(OS_USER)
        os.chown(self._dir, user.pw_uid, user.pw_gid)
        self._dir.chmod(0o700)
        subprocess.run(
            _as_postgres(
                PG_BIN / "initdb", "-D", self._data, "-U", "postgres", "-A", "trust", "--no-sync"
            ),
            check=True,
            capture_output=True,
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self._dir}'",
            "max_connections = 100",
            "fsync = off",
            "shared_buffers = 64MB",
            "log_min_messages = warning",
        ]
        if self._timescaledb:
            settings += [
                "shared_preload_libraries = 'timescaledb'",
                "timescaledb.telemetry_level = off",
            ]
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def start(self) -> None:
        if not self._data.exists():
            self._init()
        subprocess.run(
            _as_postgres(PG_BIN / "pg_ctl", "-D", self._data, "-l", self.log_file, "-w", "start"),
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not listen on {self.port} within 30 s")
            time.sleep(0.05)

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """`immediate` is a crash: connections drop at once, recovery runs at the next start."""
        self.resume()
        subprocess.run(
            _as_postgres(PG_BIN / "pg_ctl", "-D", self._data, "-m", mode, "-w", "stop"),
            check=False,
            capture_output=True,
        )

    def restart(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        self.stop(mode)
        self.start()

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, ...)."""
        pid_file = self._data / "postmaster.pid"
        if not pid_file.exists():
            return []
        postmaster = int(pid_file.read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == postmaster:
                        children.append(int(entry.name))
        return [postmaster, *children]

    def pause(self) -> None:
        """SIGSTOP every process of the cluster: connections stay open and nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.unslow()
        self._signal(signal.SIGCONT)

    def slow(self, *, run_ms: int, pause_ms: int) -> None:
        """Until `unslow()`: the cluster runs `run_ms` out of every `run_ms + pause_ms`."""
        assert self._slow is None, "already slow"
        self._slow_stop.clear()

        def cycle() -> None:
            while not self._slow_stop.is_set():
                self._signal(signal.SIGSTOP)
                self._slow_stop.wait(pause_ms / 1000)
                self._signal(signal.SIGCONT)
                self._slow_stop.wait(run_ms / 1000)

        self._slow = threading.Thread(target=cycle, name="postgres-slow", daemon=True)
        self._slow.start()

    def unslow(self) -> None:
        if self._slow is not None:
            self._slow_stop.set()
            self._slow.join()
            self._slow = None
            self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop("immediate")
        shutil.rmtree(self._dir, ignore_errors=True)
