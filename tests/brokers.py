"""A private Mosquitto for a test session, started from the installed binary.

Tests never share a broker with another checkout's tests or a developer's demo: a backend
subscribed to `telecare/v1/#` on a shared broker would answer `rejected` for devices it does
not know, and persistent sessions left behind would pile up. Fault tests stop and restart it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from telecare.core.mqtt_url import BrokerAddress, parse_mqtt_url
from telecare.devices import ca_setup
from tests.tls import TlsFiles

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
BACKEND_USER = "telecare-backend"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class PrivateBroker:
    """`with PrivateBroker() as broker:` runs mosquitto on a free port until the block ends.

    `dynsec=True` runs it with the shipped dynamic-security configuration
    (deploy/mosquitto/): no anonymous clients, and `url` carries the backend's own account.
    `tls=` adds a TLS listener (`tls_url`) with that certificate.
    `production=True` runs it with the shipped deploy/mosquitto/production.conf and its ACL:
    the device listener on `port`, the service listener on `service_port`, the password
    listener on `password_port`, with the files of `telecare ca init` made in the broker's
    directory (`ca`); `device_address()` and `service_address()` say how to connect with a
    certificate, `password_address()` with a password, `reload()` sends SIGHUP.
    """

    def __init__(
        self,
        *,
        extra_config: str = "",
        persistence: bool = False,
        dynsec: bool = False,
        tls: TlsFiles | None = None,
        production: bool = False,
    ) -> None:
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self._dir = Path(tempfile.mkdtemp(prefix="telecare-mosquitto-"))
        self._extra_config = extra_config
        self._persistence = persistence
        self._process: subprocess.Popen[bytes] | None = None
        self.dynsec = dynsec
        self.backend_password = uuid.uuid4().hex
        self.production = production
        self.service_port = free_port() if production else 0
        self.password_port = free_port() if production else 0
        self.ca: ca_setup.CaFiles | None = None
        if production:
            self.ca = ca_setup.init(self._dir / "ca", days=2, now=datetime.now(UTC))

    @property
    def url(self) -> str:
        if self.production:  # the backend's: the service listener (with `ca` files' settings)
            return f"mqtts://127.0.0.1:{self.service_port}"
        if self.dynsec:
            return f"mqtt://{BACKEND_USER}:{self.backend_password}@127.0.0.1:{self.port}"
        return f"mqtt://127.0.0.1:{self.port}"

    def tls_url(self, host: str | None = None) -> str:
        assert self.tls is not None
        return f"mqtts://{host or self.tls.server_name}:{self.tls_port}"

    @property
    def address(self) -> BrokerAddress:
        if self.production:
            return self.service_address()
        return parse_mqtt_url(self.url)

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    @property
    def config_dir(self) -> Path:
        return self._dir

    def device_address(self, cert_file: Path, key_file: Path) -> BrokerAddress:
        """The device listener, verified with the broker CA, as the certificate's device."""
        return self._production_address(self.port, cert_file, key_file)

    def password_address(self, username: str, password: str) -> BrokerAddress:
        """The password listener (TLS, broker verified with the broker CA)."""
        assert self.ca is not None, "production=True only"
        return BrokerAddress(
            host="127.0.0.1",
            port=self.password_port,
            username=username,
            password=password,
            tls=True,
            ca_file=str(self.ca.broker_ca_cert),
        )

    def service_address(self, name: str = ca_setup.INGEST) -> BrokerAddress:
        """The service listener as the service `name` (its files made by `ca_setup`)."""
        assert self.ca is not None, "production=True only"
        cert_file, key_file = self.ca.services[name]
        return self._production_address(self.service_port, cert_file, key_file)

    def _production_address(self, port: int, cert_file: Path, key_file: Path) -> BrokerAddress:
        assert self.ca is not None, "production=True only"
        return BrokerAddress(
            host="127.0.0.1",  # in the broker certificate of `telecare ca init` by default
            port=port,
            username=None,
            password=None,
            tls=True,
            ca_file=str(self.ca.broker_ca_cert),
            cert_file=str(cert_file),
            key_file=str(key_file),
        )

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload mosquitto` sends: the broker rereads its CRL and ACL."""
        os.kill(self.pid, signal.SIGHUP)

    def _write_config(self) -> Path:
        if self.production:
            return self._write_production_config()
        conf = self._dir / "mosquitto.conf"
        lines = [
            "user root" if os.geteuid() == 0 else "",
            f"listener {self.port} 127.0.0.1",
            self._dynsec_config() if self.dynsec else "allow_anonymous true",
            f"persistence {'true' if self._persistence else 'false'}",
            f"persistence_location {self._dir}/",
            f"log_dest file {self._dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",  # as docs/OPERATIONS.md configures production brokers
            # as deploy/mosquitto/ ships it (dynamic-security.conf, read above, holds it too)
            "" if self.dynsec else "max_packet_size 16384",
            self._tls_listener(),
            self._extra_config,
        ]
        conf.write_text("\n".join(line for line in lines if line) + "\n")
        return conf

    def _write_production_config(self) -> Path:
        """The shipped file, line for line, but for its ports and the paths of its files."""
        shipped = (DEPLOY / "production.conf").read_text().splitlines()
        lines = [
            "user root" if os.geteuid() == 0 else "",
            *(self._production_line(line) for line in shipped if line and line[0] != "#"),
            f"persistence {'true' if self._persistence else 'false'}",
            f"persistence_location {self._dir}/",
            f"log_dest file {self._dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            self._extra_config,
        ]
        conf = self._dir / "mosquitto.conf"
        conf.write_text("\n".join(line for line in lines if line) + "\n")
        return conf

    def _production_line(self, line: str) -> str:
        assert self.ca is not None
        option, _, value = line.partition(" ")
        if option == "listener":
            port = {
                "8883": self.port,
                "8884": self.service_port,
                "8885": self.password_port,
            }[value]
            return f"listener {port} 127.0.0.1"
        if option in {"cafile", "certfile", "keyfile", "crlfile", "password_file"}:
            return f"{option} {self.ca.directory / Path(value).name}"
        if option == "acl_file":
            return f"acl_file {DEPLOY / 'production.acl'}"
        return line

    def _tls_listener(self) -> str:
        if self.tls is None:
            return ""
        return (
            f"listener {self.tls_port} 127.0.0.1\n"
            f"certfile {self.tls.server_cert}\nkeyfile {self.tls.server_key}"
        )

    def _dynsec_config(self) -> str:
        """The shipped plugin configuration, with its file in this broker's directory."""
        dynsec_file = self._dir / "dynamic-security.json"
        if not dynsec_file.exists():
            subprocess.run(
                [DEPLOY / "dynsec-init.sh", dynsec_file, BACKEND_USER, self.backend_password],
                check=True,
                capture_output=True,
            )
        shipped = (DEPLOY / "dynamic-security.conf").read_text().splitlines()
        return "\n".join(
            f"plugin_opt_config_file {dynsec_file}"
            if line.startswith("plugin_opt_config_file")
            else line
            for line in shipped
            if line and not line.startswith("#")
        )

    def start(self) -> None:
        assert self._process is None, "already running"
        conf = self._write_config()
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not listen on {self.port} within 10 s")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with `kill=True`) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

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
        shutil.rmtree(self._dir, ignore_errors=True)
