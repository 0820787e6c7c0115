"""Experiment 2 of bench/broker_identity.py: a Mosquitto password file as the fleet grows.

The alternative for devices that cannot present a client certificate: the backend renders
`password_file` from hashes it stores and reloads the broker. Per file size we keep the
render time, the broker's start and reload stalls (it parses the whole file each time), its
memory, how fast clients authenticate, and the reload stall again with clients connected,
since a reload re-checks every connected client's password.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bench.broker_identity_broker import Broker
from bench.broker_identity_crl import Row, measure_reload
from bench.broker_identity_mqtt import ClientSpec, Holders, Probe, Refused, mqtt_connect
from bench.broker_identity_pki import filler_hashes, password_hash, render_password_file
from tests.brokers import free_port

PROBE = ("bench-probe", "probe-secret")
MADE_BY_TOOL = ("made-by-mosquitto-passwd", "tool-secret")


def mosquitto_passwd_line(user: str, password: str) -> str:
    """A line written by mosquitto_passwd itself, to check the broker reads ours the same."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pw"
        path.touch()
        subprocess.run(["mosquitto_passwd", "-b", path, user, password], check=True)
        return path.read_text().strip()


async def _accepted(port: int, user: str, password: str) -> bool:
    try:
        _, writer = await mqtt_connect(port, user, username=user, password=password, limit_s=120)
    except Refused:
        return False
    writer.transport.abort()
    return True


class PasswordFleet:
    """Precomputed rows (user, hash), as the registry would hold them."""

    def __init__(self, largest: int, connected: int) -> None:
        tool_user, tool_hash = mosquitto_passwd_line(*MADE_BY_TOOL).split(":", 1)
        self.fixed = [(PROBE[0], password_hash(PROBE[1])), (tool_user, tool_hash)]
        self.devices = [(f"pw-{n:06d}", f"secret-{n}") for n in range(connected)]
        self.fixed += [(user, password_hash(secret)) for user, secret in self.devices]
        self.fillers = filler_hashes(max(largest - len(self.fixed), 0))

    def rows(self, size: int, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        filler = [(f"dev-{n:07d}", h) for n, h in enumerate(self.fillers[: size - len(self.fixed)])]
        return self.fixed + extra + filler


async def password_session(folder: Path, fleet: PasswordFleet, size: int) -> Row:
    folder.mkdir(parents=True)  # noqa: ASYNC240 (microseconds, before any client runs)
    port = free_port()
    pwfile = folder / "passwords"
    newcomers: list[tuple[str, str]] = []
    row: Row = {"entries": size, "render_s": render_password_file(pwfile, fleet.rows(size, []))}
    row["file_mib"] = pwfile.stat().st_size / 2**20
    config = "\n".join(
        [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {pwfile}",
            f"listener {port} 127.0.0.1",
        ]
    )
    broker = Broker(folder / "broker", config, [port])
    row["start_s"] = broker.start(timeout=300)
    try:
        row["rss_mib"] = broker.rss_mib()
        row["tool_line_accepted"] = await _accepted(port, *MADE_BY_TOOL)
        probe = await Probe.open(port, PROBE[0], username=PROBE[0], password=PROBE[1])
        try:
            for connected in (0, len(fleet.devices)):
                newcomer = (f"newcomer-{connected}", f"secret-new-{connected}")
                newcomers.append((newcomer[0], password_hash(newcomer[1])))
                row[f"rerender_s_{connected}"] = render_password_file(
                    pwfile, fleet.rows(size, newcomers)
                )

                async def visible(user: str = newcomer[0], secret: str = newcomer[1]) -> bool:
                    return await _accepted(port, user, secret)

                if connected:
                    specs = [ClientSpec(u, None, u, p) for u, p in fleet.devices]
                    held = Holders(port, None, specs)
                    cpu = broker.cpu_seconds()
                    held.connect()
                    row["connect_clients"] = held.connected
                    row["connect_refused"] = held.refused
                    row["connections_per_s"] = held.connected / held.seconds
                    row["broker_cpu_ms_per_connection"] = (
                        1000 * (broker.cpu_seconds() - cpu) / max(held.connected, 1)
                    )
                reload = await measure_reload(broker, probe, visible)
                row |= {f"{key}_{connected}": value for key, value in reload.items()}
                if connected:
                    row["dropped"] = held.connected - held.still_open()
                    held.close()
        finally:
            await probe.close()
    finally:
        broker.stop()
    return row
