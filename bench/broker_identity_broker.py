"""A private mosquitto for bench/broker_identity.py, with the numbers the benchmark reads.

Not tests/brokers.PrivateBroker: the benchmark needs listeners that class does not make
(client certificates, CRL, password file) and reads the process's memory and CPU time.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TICKS = os.sysconf("SC_CLK_TCK")


def mosquitto_version() -> str:
    out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "?"


def raise_open_files_limit() -> int:
    """Raise this process's (and so its children's) descriptor limit to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """`with Broker(folder, config, ports) as broker:` runs mosquitto with that configuration."""

    def __init__(self, folder: Path, config: str, ports: list[int]) -> None:
        self.folder = folder
        self.ports = ports
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        lines = [
            "user root" if os.geteuid() == 0 else "",
            "persistence false",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "set_tcp_nodelay true",
            "max_packet_size 16384",
            config,
        ]
        self.conf.write_text("\n".join(line for line in lines if line) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    def start(self, timeout: float = 120) -> float:
        """Start and wait until every listener accepts; returns the seconds that took."""
        started = time.perf_counter()
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not _listening(port):
                if self._process.poll() is not None:
                    err = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise RuntimeError(f"mosquitto exited: {err} {self.log_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen on {port} in {timeout} s")
                time.sleep(0.02)
        return time.perf_counter() - started

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def tls_listener(port: int, ca: Path, cert: Path, key: Path, crl: Path | None) -> str:
    """The production design's device listener (deploy/mosquitto/production.conf)."""
    return "\n".join(
        [
            "per_listener_settings false",
            "allow_anonymous false",
            f"listener {port} 127.0.0.1",
            f"cafile {ca}",
            f"certfile {cert}",
            f"keyfile {key}",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            f"crlfile {crl}" if crl else "",
            "tls_version tlsv1.2",
        ]
    )
