"""MQTT 3.1.1 as bench/broker_identity.py needs it: connect, hold, probe.

A dozen lines of codec instead of the project's client, so the benchmark measures the broker
and does not change when the client does. Connections come from source addresses
127.0.0.2-127.0.0.251 with the port chosen at connect time and close with a reset, so tens of
thousands of them neither exhaust ephemeral ports nor leave TIME_WAIT behind for the next run.
Idle connections are held in worker processes (`Holders`), so their handshakes use both cores
and the process measuring the probe's round trips stays idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
import ssl
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.broker_identity_pki import SERVER_NAME

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class Refused(Exception):
    """The broker did not accept the connection (TLS alert, reset, or a CONNACK code)."""


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    length, size = bytearray(), len(body)
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([first]) + bytes(length) + body


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)  # clean session
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", 3600) + _str(client_id)
    body += (_str(username) if username else b"") + (_str(password) if password else b"")
    return _packet(0x10, body)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    size, shift = 0, 0
    while True:
        digit = (await reader.readexactly(1))[0]
        size += (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            return first, await reader.readexactly(size)


def tls_context(ca: Path, cert_pem: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert_pem is not None:
        ctx.load_cert_chain(cert_pem)
    return ctx


def _socket(index: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.bind((f"127.0.0.{2 + index % 250}", 0))
    sock.setblocking(False)
    return sock


async def mqtt_connect(
    port: int,
    client_id: str,
    *,
    tls: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
    index: int = 0,
    limit_s: float = 30,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and wait for CONNACK 0; `Refused` (with the reason) otherwise."""
    sock = _socket(index)
    try:
        async with asyncio.timeout(limit_s):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=tls, server_hostname=SERVER_NAME if tls else None
            )
            writer.write(connect_packet(client_id, username, password))
            first, body = await read_packet(reader)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        sock.close()
        raise Refused(f"{type(exc).__name__}: {exc}") from exc
    if first >> 4 != 2 or body[1] != 0:
        writer.close()
        raise Refused(f"CONNACK {body.hex()}")
    return reader, writer


class Probe:
    """Publishes QoS 1 to its own topic every 10 ms and keeps each round trip.

    A round trip ends when both the PUBACK and the message itself are back, so it includes
    any time the broker spends not serving clients (a reload, a file parse).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self.samples: list[tuple[float, float]] = []  # (sent at perf_counter, seconds)
        self._stop = asyncio.Event()
        self._sampled = asyncio.Event()  # set after each round trip, and when the probe ends
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, client_id: str, **connect: Any) -> Probe:
        probe = cls(*await mqtt_connect(port, client_id, **connect))
        probe._task = asyncio.create_task(probe._run(f"bench/probe/{client_id}"), name="probe")
        await probe.wait_for_samples(0.0, 1)
        return probe

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self, topic: str) -> None:
        try:
            await self._loop(topic)
        finally:
            self._sampled.set()

    async def _loop(self, topic: str) -> None:
        self._writer.write(_packet(0x82, struct.pack("!H", 1) + _str(topic) + b"\x01"))
        while (await read_packet(self._reader))[0] >> 4 != 9:  # SUBACK
            pass
        packet_id = 1
        while not self._stop.is_set():
            packet_id = packet_id % 65535 + 1
            body = _str(topic) + struct.pack("!H", packet_id) + b"probe"
            sent = time.perf_counter()
            self._writer.write(_packet(0x32, body))
            acked = echoed = False
            while not (acked and echoed):
                first, body = await read_packet(self._reader)
                if first >> 4 == 4:
                    acked = acked or struct.unpack("!H", body[:2])[0] == packet_id
                elif first >> 4 == 3:
                    echoed = True
                    offset = 2 + struct.unpack("!H", body[:2])[0]
                    self._writer.write(_packet(0x40, body[offset : offset + 2]))  # PUBACK it
            self.samples.append((sent, time.perf_counter() - sent))
            self._sampled.set()
            await asyncio.sleep(0.01)

    def worst(self, since: float, until: float = float("inf")) -> float:
        """The longest round trip that was under way at any time in [since, until]."""
        return max(
            (rtt for sent, rtt in self.samples if sent + rtt >= since and sent <= until),
            default=float("nan"),
        )

    async def wait_for_samples(self, since: float, count: int) -> None:
        """Until `count` round trips sent after `since` are back (or the probe has ended)."""
        while self.alive and sum(sent >= since for sent, _ in self.samples) < count:
            self._sampled.clear()
            await self._sampled.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 30)
        self._writer.transport.abort()


@dataclass(frozen=True)
class ClientSpec:
    client_id: str
    cert_pem: Path | None = None  # TLS with this client certificate; plaintext if None
    username: str | None = None
    password: str | None = None


def _run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def _hold(conn: Connection, port: int, ca: Path | None, specs: list[ClientSpec], base: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(100)
        streams: list[asyncio.StreamWriter] = []
        watchers: list[asyncio.Task[bytes]] = []
        errors: list[str] = []

        contexts = [tls_context(ca, s.cert_pem) if ca is not None else None for s in specs]

        async def one(n: int, spec: ClientSpec) -> None:
            async with limit:
                tls = contexts[n]
                try:
                    reader, writer = await mqtt_connect(
                        port, spec.client_id, tls=tls, username=spec.username,
                        password=spec.password, index=base + n,
                    )  # fmt: skip
                except Refused as exc:
                    errors.append(str(exc))
                    return
                streams.append(writer)
                watchers.append(asyncio.create_task(reader.read(1), name=spec.client_id))

        conn.send("ready")
        if await loop.run_in_executor(None, conn.recv) != "connect":
            conn.send("closed before connecting")
            return
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for n, spec in enumerate(specs):
                group.create_task(one(n, spec))
        conn.send((len(streams), errors[:3], len(errors), time.perf_counter() - started))
        while (command := await loop.run_in_executor(None, conn.recv)) == "count":
            conn.send(sum(not task.done() for task in watchers))
        for writer in streams:
            writer.transport.abort()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        conn.send(command)

    _run_loop(main)


class Holders:
    """`with Holders(port, ca, specs, workers=2) as held:` keeps `specs` connected."""

    def __init__(
        self, port: int, ca: Path | None, specs: list[ClientSpec], *, workers: int = 2
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs: list[Any] = []
        share = -(-len(specs) // workers) if specs else 0
        for k in range(workers if specs else 0):
            mine, theirs = ctx.Pipe()
            part = specs[k * share : (k + 1) * share]
            proc = ctx.Process(target=_hold, args=(theirs, port, ca, part, k * share), daemon=True)
            proc.start()
            self._pipes.append(mine)
            self._procs.append(proc)
        self.connected = 0
        self.refused = 0
        self.errors: list[str] = []
        self.seconds = 0.0

    def connect(self) -> None:
        """Connect them all; `seconds` counts from when every worker is ready to start."""
        for pipe in self._pipes:
            assert pipe.recv() == "ready"
        started = time.perf_counter()
        for pipe in self._pipes:
            pipe.send("connect")
        for pipe in self._pipes:
            ok, errors, refused, _ = pipe.recv()
            self.connected += ok
            self.refused += refused
            self.errors += errors
        self.seconds = time.perf_counter() - started

    def still_open(self) -> int:
        for pipe in self._pipes:
            pipe.send("count")
        return sum(pipe.recv() for pipe in self._pipes)

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(60):
                    pipe.recv()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._pipes, self._procs = [], []

    def __enter__(self) -> Holders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
