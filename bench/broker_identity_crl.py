"""Experiment 1 of bench/broker_identity.py: what a CRL reload costs a broker full of devices.

One broker per (connected clients, repetition) on the design's device listener. After the
clients are connected it is reloaded once per CRL size, each time with one more certificate
revoked, and we keep: the longest round trip of the probe (the broker serves nobody while it
reloads), whether any connected client was dropped, and how long after SIGHUP the newly
revoked certificate's handshake is refused. Separately, on an otherwise idle broker, what
one handshake costs the broker at each CRL size, since OpenSSL consults the CRL in every one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.broker_identity_broker import Broker, tls_listener
from bench.broker_identity_mqtt import (
    ClientSpec,
    Holders,
    Probe,
    Refused,
    mqtt_connect,
    tls_context,
)
from bench.broker_identity_pki import ClientCert, Pki, random_serials
from tests.brokers import free_port

Row = dict[str, Any]


async def measure_reload(
    broker: Broker, probe: Probe, visible: Callable[[], Awaitable[bool]] | None
) -> Row:
    """SIGHUP the broker; the probe's worst round trip around it, and when `visible` holds."""
    # Round trips flowing again after whatever blocked this process (writing a large CRL),
    # then a quiet second as the baseline.
    await probe.wait_for_samples(time.perf_counter(), 20)
    await asyncio.sleep(1.0)
    rss_before, cpu_before = broker.rss_mib(), broker.cpu_seconds()
    hup = time.perf_counter()
    broker.reload()
    seen = float("nan")
    while visible is not None and time.perf_counter() < hup + 120:
        if await visible():
            seen = time.perf_counter() - hup
            break
        await asyncio.sleep(0.01)
    async with asyncio.timeout(120):
        await probe.wait_for_samples(time.perf_counter(), 30)  # back to normal
    return {
        "stall_s": probe.worst(hup),
        "baseline_worst_s": probe.worst(hup - 1.0, hup),
        "visible_after_s": seen,
        "reload_cpu_s": broker.cpu_seconds() - cpu_before,
        "rss_before_mib": rss_before,
        "rss_after_mib": broker.rss_mib(),
        "probe_connected": probe.alive,
    }


async def attempt(port: int, ca: Path, cert: ClientCert) -> str:
    """ "accepted", or why the broker refused this certificate."""
    try:
        _, writer = await mqtt_connect(port, cert.cn, tls=tls_context(ca, cert.pem), limit_s=60)
    except Refused as exc:
        return str(exc)
    writer.transport.abort()
    return "accepted"


def connect_row(broker: Broker, held: Holders) -> Row:
    """Connect `held`; the rate, and the broker's CPU time per attempted connection."""
    cpu = broker.cpu_seconds()
    held.connect()
    cpu = broker.cpu_seconds() - cpu
    return {
        "connected": held.connected,
        "refused": held.refused,
        "errors": held.errors,
        "connect_s": held.seconds,
        "connections_per_s": held.connected / held.seconds if held.seconds else 0.0,
        "broker_cpu_ms_per_connection": 1000 * cpu / max(held.connected + held.refused, 1),
        "rss_mib": broker.rss_mib(),
    }


async def crl_generation(pki: Pki, folder: Path, sizes: list[int], reps: int) -> list[Row]:
    serials = random_serials(max(sizes))
    rows = []
    for size in sizes:
        for rep in range(reps):
            path = folder / f"generated-{size}.pem"
            seconds = pki.write_crl(path, serials[:size])
            rows.append({"revoked": size, "rep": rep, "seconds": seconds, "mib": _mib(path)})
            path.unlink()
    return rows


def _mib(path: Path) -> float:
    return path.stat().st_size / 2**20


async def crl_session(
    folder: Path, pki: Pki, clients: list[ClientCert], sizes: list[int]
) -> list[Row]:
    """One broker with `clients` connected, reloaded once per CRL size."""
    folder.mkdir(parents=True)  # noqa: ASYNC240 (microseconds, before any client runs)
    ca, crl, port = pki.ca_cert, folder / "devices.crl", free_port()
    pki.write_crl(crl, [])
    serials = random_serials(max(sizes))
    revoked: list[int] = []
    rows = []
    config = tls_listener(port, ca, pki.server_cert, pki.server_key, crl)
    with Broker(folder / "broker", config, [port]) as broker:
        idle_rss = broker.rss_mib()
        with Holders(port, ca, [ClientSpec(c.cn, c.pem) for c in clients]) as held:
            rows.append({"step": "connect", "crl_revoked": 0, "rss_idle_mib": idle_rss})
            rows[-1].update(connect_row(broker, held))
            probe_cert = pki.client(f"probe-{folder.name}")
            probe = await Probe.open(port, probe_cert.cn, tls=tls_context(ca, probe_cert.pem))
            try:
                for size in sizes:
                    victim = pki.client(f"revokee-{size}-{folder.name}")
                    before = await attempt(port, ca, victim)
                    revoked.append(victim.serial)
                    generated = pki.write_crl(crl, serials[:size] + revoked)

                    async def refused(victim: ClientCert = victim) -> bool:
                        return await attempt(port, ca, victim) != "accepted"

                    row = {"step": "reload", "crl_revoked": size + len(revoked)}
                    row |= {"crl_mib": _mib(crl), "crl_write_s": generated}
                    row |= {"victim_before": before, "connected": held.connected}
                    row |= await measure_reload(broker, probe, refused)
                    row["victim_after"] = await attempt(port, ca, victim)
                    row["victim_refused"] = row["victim_after"] != "accepted"
                    row["dropped"] = held.connected - held.still_open()
                    rows.append(row)
            finally:
                await probe.close()
    return rows


async def handshake_session(
    folder: Path, pki: Pki, clients: list[ClientCert], sizes: list[int], other: Pki
) -> list[Row]:
    """`clients` connect (then leave) once per CRL size loaded: what a handshake costs.

    Past 100,000 revoked entries only a tenth of them: each handshake takes long enough
    that all of them would not fit in the run (nor in the clients' connect timeout).
    Last, devices of a second issuing CA with an empty CRL of its own, next to the first
    CA's CRL of (up to) 100,000 entries in the same crlfile: whether splitting the device CA
    keeps the cost of one large CRL away from the other devices' handshakes.
    """
    folder.mkdir(parents=True)  # noqa: ASYNC240 (microseconds, before any client runs)
    ca, crl, port = folder / "cas.pem", folder / "devices.crl", free_port()
    ca.write_bytes(pki.ca_cert.read_bytes() + other.ca_cert.read_bytes())
    pki.write_crl(crl, [])
    serials = random_serials(max(sizes))
    canary = pki.client(f"canary-{folder.name}")
    rows = []
    config = tls_listener(port, ca, pki.server_cert, pki.server_key, crl)
    with Broker(folder / "broker", config, [port]) as broker:
        for size in sizes:
            pki.write_crl(crl, serials[:size])
            broker.reload()
            await asyncio.sleep(0.2)
            assert await attempt(port, ca, canary) == "accepted"  # answered: reload done
            batch = clients if size <= 100_000 else clients[: max(len(clients) // 10, 10)]
            with Holders(port, ca, [ClientSpec(c.cn, c.pem) for c in batch]) as held:
                row = {"crl_revoked": size, "issuer": "own", "crl_mib": _mib(crl)}
                rows.append(row | connect_row(broker, held))
        size = max(s for s in sizes if s <= 100_000)
        pki.write_crl(crl, serials[:size], also=other.crl_pem([]))
        broker.reload()
        await asyncio.sleep(0.2)
        assert await attempt(port, ca, canary) == "accepted"
        strangers = [other.client(f"other-{c.cn}") for c in clients]
        with Holders(port, ca, [ClientSpec(c.cn, c.pem) for c in strangers]) as held:
            row = {"crl_revoked": size, "issuer": "other", "crl_mib": _mib(crl)}
            rows.append(row | connect_row(broker, held))
    return rows
