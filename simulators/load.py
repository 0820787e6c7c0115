"""Load mode: heartbeats for N device ids at a target rate over a few connections.

Cheap by construction: each device's PUBLISH header and payload template are serialised once;
every 10 ms tick builds the due packets by byte concatenation and hands each connection one
write. `--workers K` runs K publisher processes, each with its share of devices and rate
(`LoadWorkers`, which the system benchmark drives too). The achieved rate is printed every
second and at the end. A rate above what the publishers and the broker can take publishes as
fast as they take it: the writes wait while the socket's buffer is full.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import struct
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import MqttConnection, connect
from telecare.mqtt.packets import PUBLISH, remaining_length
from telecare.protocol.messages import MessageKind, topic_for

TICK_S = 0.01
_MAX_PER_TICK = 5000  # a rate the publisher cannot reach never builds a backlog of packets


@dataclass(frozen=True)
class LoadOptions:
    broker: BrokerAddress
    rate: float
    duration_s: float
    devices: int
    qos: int = 0
    connections: int = 4
    workers: int = 1
    prefix: str = "load"
    first_device: int = 0
    interval_s: int = 60  # what the heartbeats say


def device_ids(prefix: str, first: int, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(first, first + count)]


class HeartbeatTemplates:
    """Per device: the PUBLISH topic part; per message only msg_id, seq and ts change.

    Each load run tags its msg_ids: a device's first heartbeat of a run must not carry the
    msg_id of its last one from the run before, which the ingest would rightly drop as a
    redelivery (so a benchmark's second phase would lose heartbeats to its first)."""

    def __init__(self, ids: list[str], *, qos: int, interval_s: int) -> None:
        self.topics = [
            struct.pack("!H", len(t)) + t.encode()
            for t in (topic_for(i, MessageKind.HEARTBEAT) for i in ids)
        ]
        self.first = bytes([PUBLISH | (qos << 1)])
        self.qos = qos
        self.run = os.urandom(4).hex().encode()
        self.tail = (
            b',"interval_s":%d,"power":"mains","battery_pct":90,"signal_dbm":-70,'
            b'"network":"4g","firmware":"load-1.0"}' % interval_s
        )

    @staticmethod
    def now() -> bytes:
        """The `ts` of heartbeats written now."""
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()

    def packet(self, device: int, seq: int, ts: bytes, packet_id: int) -> bytes:
        body = (b'{"msg_id":"l%s-%d","ts":"%s","seq":%d' % (self.run, seq, ts, seq)) + self.tail
        pid = struct.pack("!H", packet_id) if self.qos else b""
        topic = self.topics[device]
        return self.first + remaining_length(len(topic) + len(pid) + len(body)) + topic + pid + body


async def _publish(options: LoadOptions, sent: Synchronized[int], acked: Synchronized[int]) -> None:
    templates = HeartbeatTemplates(
        device_ids(options.prefix, options.first_device, options.devices),
        qos=options.qos,
        interval_s=options.interval_s,
    )
    conns: list[MqttConnection] = [
        await connect(
            options.broker,
            client_id=f"{options.prefix}-pub-{options.first_device}-{c}",
            keepalive_s=60,
        )
        for c in range(options.connections)
    ]
    start = time.monotonic()
    count, device, seq, packet_id = 0, 0, 0, 0
    try:
        while (now := time.monotonic()) - start < options.duration_s:
            due = min(_MAX_PER_TICK, int(options.rate * (now - start)) - count)
            ts = templates.now()
            batches: list[list[bytes]] = [[] for _ in conns]
            for n in range(max(0, due)):
                packet_id = packet_id % 65535 + 1
                batches[n % len(conns)].append(templates.packet(device, seq, ts, packet_id))
                device += 1
                if device == options.devices:
                    device, seq = 0, seq + 1
            for conn, batch in zip(conns, batches, strict=True):
                if batch:
                    conn.write(b"".join(batch))
            count += max(0, due)
            sent.value = count
            acked.value = sum(c.acks_received for c in conns)
            await asyncio.gather(*(c.drain() for c in conns))
            await asyncio.sleep(TICK_S)
        if options.qos:  # give the last PUBACKs a moment
            await asyncio.sleep(1)
            acked.value = sum(c.acks_received for c in conns)
    finally:
        for conn in conns:
            await conn.disconnect()


def _worker(options: LoadOptions, sent: Synchronized[int], acked: Synchronized[int]) -> None:
    asyncio.run(_publish(options, sent, acked))


@dataclass(frozen=True)
class LoadResult:
    sent: int
    acked: int
    rate: float
    failed_workers: list[str]


class LoadWorkers:
    """The publisher processes of one load: `start()`, read `sent` and `acked`, `join()`."""

    def __init__(self, options: LoadOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        share = options.devices // options.workers
        self._counters = [(ctx.Value("q", 0), ctx.Value("q", 0)) for _ in range(options.workers)]
        parts = [
            replace(
                options,
                rate=options.rate / options.workers,
                devices=share,
                first_device=options.first_device + w * share,
                workers=1,
            )
            for w in range(options.workers)
        ]
        self._procs = [
            ctx.Process(target=_worker, args=(part, *pair), name=f"load-{w}", daemon=True)
            for w, (part, pair) in enumerate(zip(parts, self._counters, strict=True))
        ]

    def start(self) -> None:
        for proc in self._procs:
            proc.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def running(self) -> bool:
        return any(p.is_alive() for p in self._procs)

    @property
    def sent(self) -> int:
        return sum(s.value for s, _ in self._counters)

    @property
    def acked(self) -> int:
        return sum(a.value for _, a in self._counters)

    def join(self) -> list[str]:
        """Wait for every worker; the names of those that failed."""
        for proc in self._procs:
            proc.join()
        return [p.name for p in self._procs if p.exitcode != 0]

    def stop(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        self.join()


async def run_load(options: LoadOptions) -> LoadResult:
    """Publish for `duration_s`, printing the achieved rate each second and at the end."""
    workers = LoadWorkers(options)
    print(
        f"load: {options.rate:g} heartbeats/s target, {options.devices} device ids, "
        f"{options.workers} worker(s) x {options.connections} connection(s), QoS {options.qos}",
        file=sys.stderr,
        flush=True,
    )
    workers.start()
    start = last_at = time.monotonic()
    last = 0
    while workers.running:
        await asyncio.sleep(1)
        now, total = time.monotonic(), workers.sent
        print(
            f"load: {total - last:.0f} msg in {now - last_at:.2f} s = "
            f"{(total - last) / (now - last_at):.0f} msg/s (sent {total}, acked {workers.acked})",
            file=sys.stderr,
            flush=True,
        )
        last, last_at = total, now
    failed = workers.join()
    total, acks = workers.sent, workers.acked
    elapsed = min(time.monotonic() - start, options.duration_s) or 1
    print(
        f"load: done: sent {total} heartbeats in {options.duration_s:g} s = "
        f"{total / elapsed:.0f} msg/s achieved (target {options.rate:g}); acked {acks}",
        flush=True,
    )
    if failed:
        print(f"load: worker(s) failed: {failed}", file=sys.stderr)
    return LoadResult(total, acks, total / elapsed, failed)
