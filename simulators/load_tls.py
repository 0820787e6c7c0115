"""Load with identity enforced: every device on a TLS connection of its own, with its own
certificate.

A broker that takes a device's identity from its certificate (deploy/mosquitto/production.conf)
lets it publish under its own id only, so simulators/load.py's few shared connections cannot
publish for many devices there. Here each device connects as a hub does (simulators/hub.py):
its Last Will says `offline` on its status topic, it subscribes to its ack topic and publishes
`online` (retained), then heartbeats at QoS 1. A lost connection is retried after core.backoff's
jittered exponential delay, as hubs do, and a heartbeat that fell due while the device was away
goes out as soon as it is back.

Heartbeats either go round the devices at the fleet's rate (`set_rate`), so at R heartbeats a
second each of D devices beats every D/R seconds (a device with `window` heartbeats not yet
PUBACKed is passed over, so a rate above what the broker and the machine take publishes as fast
as they take it); or each device keeps a hub's schedule (`set_interval`): a phase of its own,
then every interval less up to `jitter` of it. Packets are serialised as in simulators/load.py;
each goes to its device's connection.

`DeviceFleet` runs K worker processes (uvloop), each with its share of the devices, at the
niceness asked (on a benchmark's machine the devices should not take the cores of what they
load). A process opens at most `connecting` connections at once (a limit of the load generator,
not of devices). Connections leave from 127.0.0.2, .3, ... (`per_source` each): one pair of
addresses has only the ephemeral port range. The workers raise their descriptor limit as far as
they may.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import multiprocessing
import os
import random
import resource
import socket
import ssl
import time
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import uvloop

from telecare.core.backoff import backoff_delay
from telecare.mqtt import packets
from telecare.mqtt.client import MqttConnection, MqttError
from telecare.protocol.messages import MessageKind, topic_for
from telecare.simulators.load import HeartbeatTemplates, device_ids

log = logging.getLogger(__name__)

TICK_S = 0.01
_MAX_PER_TICK = 5000
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux
WILL_PAYLOAD = b'{"state":"offline","reason":"lwt"}'


def raise_descriptor_limit(wanted: int = 400_000) -> int:
    """As many open files as `wanted` (or the most this process may have); the limit now."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for limit in (max(wanted, hard), hard):  # raising the hard limit needs CAP_SYS_RESOURCE
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, limit), limit))
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class FleetOptions:
    host: str  # the broker's address (its device listener)
    port: int
    server_name: str  # the name its certificate carries
    ca_file: str  # the CA that signed the broker's certificate
    cert_dir: str  # <device id>.pem: each device's certificate and key
    devices: int
    prefix: str = "load"
    first_device: int = 0
    workers: int = 2
    interval_s: int = 120  # what the heartbeats say
    keepalive_s: int = 60
    connecting: int = 200  # connections being opened at once, per worker
    per_source: int = 10_000  # connections per local address
    connect_timeout_s: float = 20
    window: int = 10  # heartbeats a device may have un-PUBACKed
    nice: int = 0  # added to the workers' niceness: devices have CPUs of their own
    jitter: float = 0.1  # on their own schedules, a heartbeat comes up to this share early


class _Counters:
    """One worker's figures, shared with the parent."""

    def __init__(self, ctx: Any) -> None:
        self.rate: Synchronized[float] = ctx.Value("d", 0.0)
        self.every: Synchronized[float] = ctx.Value("d", 0.0)  # > 0: each device on its own
        self.sent: Synchronized[int] = ctx.Value("q", 0)
        self.acked: Synchronized[int] = ctx.Value("q", 0)
        self.connected: Synchronized[int] = ctx.Value("q", 0)
        self.connects: Synchronized[int] = ctx.Value("q", 0)
        self.failures: Synchronized[int] = ctx.Value("q", 0)
        self.lost: Synchronized[int] = ctx.Value("q", 0)


class _Worker:
    def __init__(self, options: FleetOptions, counters: _Counters, stop: Event) -> None:
        self.options = options
        self.counters = counters
        self.stop = stop
        self.ids = device_ids(options.prefix, options.first_device, options.devices)
        self.templates = HeartbeatTemplates(self.ids, qos=1, interval_s=options.interval_s)
        count = len(self.ids)
        self.conns: list[MqttConnection | None] = [None] * count
        self.contexts: list[ssl.SSLContext | None] = [None] * count
        self.seq = [0] * count
        self.sent = [0] * count
        self.base = [0] * count  # the connection's acks_received when its heartbeats began
        self.owed = bytearray(count)  # a heartbeat fell due while it was away
        self.acked_before = 0  # heartbeats PUBACKed on connections since closed
        self.written = 0
        self.connected = 0
        self.gate = asyncio.Semaphore(options.connecting)
        self.every = 0.0  # seconds between a device's heartbeats on its own schedule, or 0
        self.schedule: list[tuple[float, int]] = []  # (when, device), a heap
        self.random = random.Random()  # noqa: S311 - schedules, not secrets

    def _context(self, i: int) -> ssl.SSLContext:
        context = self.contexts[i]
        if context is None:
            context = ssl.create_default_context(cafile=self.options.ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(f"{self.options.cert_dir}/{self.ids[i]}.pem")
            self.contexts[i] = context
        return context

    def _source(self, i: int) -> str:
        n = (self.options.first_device + i) // self.options.per_source
        return f"127.0.{n // 250}.{2 + n % 250}"

    async def _open(self, i: int) -> MqttConnection:
        options, loop = self.options, asyncio.get_running_loop()
        context = self._context(i)
        device_id = self.ids[i]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        protocol = MqttConnection(None, options.keepalive_s)
        try:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self._source(i), 0))
            sock.setblocking(False)
            async with asyncio.timeout(options.connect_timeout_s):
                await loop.sock_connect(sock, (options.host, options.port))
                await loop.create_connection(
                    lambda: protocol, sock=sock, ssl=context, server_hostname=options.server_name
                )
                will = packets.Will(topic_for(device_id, MessageKind.STATUS), WILL_PAYLOAD)
                await protocol.handshake(
                    packets.connect(
                        device_id,
                        username=None,
                        password=None,
                        will=will,
                        keepalive_s=options.keepalive_s,
                    )
                )
                await protocol.subscribe(topic_for(device_id, MessageKind.ACK), 1)
                online = b'{"state":"online","ts":"%s"}' % HeartbeatTemplates.now()
                await protocol.publish(
                    topic_for(device_id, MessageKind.STATUS), online, qos=1, retain=True
                )
        except BaseException:
            protocol.abort()
            sock.close()
            raise
        return protocol

    async def _device(self, i: int) -> None:
        """Connect, stay connected, reconnect with back-off, until cancelled."""
        attempt = 0
        counters = self.counters
        while True:
            try:
                async with self.gate:
                    conn = await self._open(i)
            except Exception as exc:  # refused, timed out, reset: as a hub, try again later
                counters.failures.value += 1
                if not counters.connects.value and counters.failures.value <= 3:
                    # none connected yet: most likely the same cause for all (a certificate?)
                    log.warning("fleet connect failed device=%s error=%r", self.ids[i], exc)
                attempt += 1
                await asyncio.sleep(backoff_delay(attempt))
                continue
            self.base[i], self.sent[i] = conn.acks_received, 0
            self.conns[i] = conn
            self.connected += 1
            counters.connects.value += 1
            if self.owed[i]:
                self.owed[i] = 0
                with contextlib.suppress(MqttError):
                    self._beat(i, conn, HeartbeatTemplates.now())
                if self.every:
                    self._next(i, time.monotonic())
            try:
                await asyncio.shield(conn.closed)
            finally:
                self.acked_before += conn.acks_received - self.base[i]
                self.conns[i] = None
                self.connected -= 1
            counters.lost.value += 1
            attempt = 1  # a session was under way: a new run of failures, as hubs count
            await asyncio.sleep(backoff_delay(attempt))

    def _beat(self, i: int, conn: MqttConnection, ts: bytes) -> None:
        seq = self.seq[i] = self.seq[i] + 1
        conn.write(self.templates.packet(i, seq, ts, seq % 65535 + 1))
        self.sent[i] += 1
        self.written += 1

    def _next(self, i: int, now: float) -> None:
        """A hub's next heartbeat: an interval on, less up to `jitter` of it."""
        spread = self.random.uniform(0, self.options.jitter)
        heapq.heappush(self.schedule, (now + self.every * (1 - spread), i))

    def _beat_due(self, now: float) -> None:
        """Each device whose heartbeat is due; one away owes it until it is back."""
        schedule, ts = self.schedule, b""
        while schedule and schedule[0][0] <= now:
            i = heapq.heappop(schedule)[1]
            conn = self.conns[i]
            if conn is None or not conn.is_open:
                self.owed[i] = 1
                continue
            ts = ts or HeartbeatTemplates.now()
            try:
                self._beat(i, conn, ts)
            except MqttError:
                self.owed[i] = 1
                continue
            self._next(i, now)

    async def _heartbeats(self) -> None:
        """Round the devices at the rate asked, or each on its own schedule as hubs are (each
        at a phase of its own first); a device away owes its turn."""
        conns, sent, base, window = self.conns, self.sent, self.base, self.options.window
        count, cursor, turns = len(conns), 0, 0
        rate, start = -1.0, time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            if self.counters.every.value != self.every:
                self.every = self.counters.every.value
                phase = self.random.uniform
                self.schedule = [(now + phase(0, self.every), i) for i in range(count)]
                heapq.heapify(self.schedule)
            if self.every:
                self._beat_due(now)
                continue
            if self.counters.rate.value != rate:
                rate, start, turns = self.counters.rate.value, now, 0
            due = min(_MAX_PER_TICK, int(rate * (now - start)) - turns)
            if due <= 0:
                continue
            turns += due
            ts = HeartbeatTemplates.now()
            for _ in range(due):
                i, cursor = cursor, (cursor + 1) % count
                conn = conns[i]
                if conn is None or not conn.is_open:
                    self.owed[i] = 1
                elif sent[i] - (conn.acks_received - base[i]) < window:
                    try:
                        self._beat(i, conn, ts)
                    except MqttError:  # closing: its task is about to notice
                        self.owed[i] = 1

    def _acked(self) -> int:
        return self.acked_before + sum(
            c.acks_received - self.base[i] for i, c in enumerate(self.conns) if c is not None
        )

    async def run(self) -> None:
        raise_descriptor_limit()
        counters = self.counters
        async with asyncio.TaskGroup() as tg:
            devices = [tg.create_task(self._device(i)) for i in range(len(self.ids))]
            beats = tg.create_task(self._heartbeats())
            while not self.stop.is_set():
                await asyncio.sleep(0.25)
                counters.sent.value = self.written
                counters.connected.value = self.connected
                counters.acked.value = self._acked()
            beats.cancel()
            for task in devices:
                task.cancel()
        await asyncio.gather(*(c.disconnect() for c in self.conns if c is not None))
        counters.connected.value = 0


def _worker(options: FleetOptions, counters: _Counters, stop: Event) -> None:
    logging.basicConfig(level=logging.WARNING)
    os.nice(options.nice)
    uvloop.run(_Worker(options, counters, stop).run())


class DeviceFleet:
    """The worker processes of one fleet: `start()`, `set_rate()`, read the figures, `stop()`."""

    def __init__(self, options: FleetOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        share = -(-options.devices // options.workers)
        self._stop = ctx.Event()
        self._counters = [_Counters(ctx) for _ in range(options.workers)]
        self._shares: list[int] = []
        self._procs = []
        for w, counters in enumerate(self._counters):
            devices = min(share, options.devices - w * share)
            part = replace(
                options, devices=devices, first_device=options.first_device + w * share, workers=1
            )
            self._shares.append(devices)
            self._procs.append(
                ctx.Process(
                    target=_worker,
                    args=(part, counters, self._stop),
                    name=f"fleet-{w}",
                    daemon=True,
                )
            )
        self.devices = options.devices

    def start(self) -> None:
        for proc in self._procs:
            proc.start()

    def set_rate(self, rate: float) -> None:
        """Heartbeats a second for the whole fleet, shared by the workers as their devices."""
        for counters, devices in zip(self._counters, self._shares, strict=True):
            counters.every.value = 0
            counters.rate.value = rate * devices / self.devices

    def set_interval(self, seconds: float) -> None:
        """Each device heartbeats on its own schedule, every `seconds` less the jitter."""
        for counters in self._counters:
            counters.rate.value = 0
            counters.every.value = seconds

    def _sum(self, name: str) -> int:
        return sum(getattr(c, name).value for c in self._counters)

    @property
    def sent(self) -> int:
        return self._sum("sent")

    @property
    def acked(self) -> int:
        return self._sum("acked")

    @property
    def connected(self) -> int:
        return self._sum("connected")

    @property
    def connects(self) -> int:
        return self._sum("connects")

    @property
    def failures(self) -> int:
        return self._sum("failures")

    @property
    def lost(self) -> int:
        return self._sum("lost")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def running(self) -> bool:
        return all(p.is_alive() for p in self._procs)

    async def wait_connected(self, count: int, timeout_s: float) -> float:
        """Seconds until `count` devices are connected; TimeoutError after `timeout_s`."""
        started = time.monotonic()
        async with asyncio.timeout(timeout_s):
            while self.connected < count:
                if not self.running:
                    raise RuntimeError("a fleet worker exited")
                await asyncio.sleep(0.1)
        return time.monotonic() - started

    def stop(self, timeout_s: float = 120) -> None:
        """Every device disconnects cleanly (no Last Will), then the workers end."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
