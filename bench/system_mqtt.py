"""The raw ceiling: a subscriber on the same broker that only counts messages.

It runs in a process of its own (as the ingest does) on the lean client the ingest's telemetry
sessions use, with the same subscription (QoS 1, PUBACK as read, shared by as many connections
as the ingest's), so the only difference between the two figures is what the ingest does with
each message: validate it, buffer it, write it to the database, tell the alert engine. Against
a broker that identifies clients by certificate it connects as the ingest does (the address's
certificate, on the service listener).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import uvloop

from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import connect


async def _count(
    broker: BrokerAddress,
    topic_filter: str,
    connections: int,
    counted: Synchronized[int],
    stop: Event,
) -> None:
    received = 0

    def on_message(topic: str, payload: bytes) -> None:
        nonlocal received
        received += 1

    conns = [
        await connect(broker, client_id=f"bench-raw-{n}", on_message=on_message)
        for n in range(connections)
    ]
    shared = f"$share/bench-raw/{topic_filter}" if connections > 1 else topic_filter
    try:
        for conn in conns:
            await conn.subscribe(shared, 1)
        counted.value = -1  # subscribed: not yet a count, but ready
        while not stop.is_set():
            await asyncio.sleep(0.2)
            counted.value = received
    finally:
        for conn in conns:
            await conn.disconnect()


def _run(
    broker: BrokerAddress,
    topic_filter: str,
    connections: int,
    counted: Synchronized[int],
    stop: Event,
    on_uvloop: bool,
) -> None:
    counting = _count(broker, topic_filter, connections, counted, stop)
    if on_uvloop:
        uvloop.run(counting)
    else:
        asyncio.run(counting)


class RawSubscriber:
    """`with RawSubscriber(broker, filter) as raw:` then read `raw.received`."""

    def __init__(
        self,
        broker: BrokerAddress,
        topic_filter: str,
        *,
        connections: int,
        on_uvloop: bool = False,  # the event loop `telecare run` uses
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._counted: Synchronized[int] = ctx.Value("q", 0)
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_run,
            args=(broker, topic_filter, connections, self._counted, self._stop, on_uvloop),
            name="bench-raw-subscriber",
            daemon=True,
        )

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    @property
    def received(self) -> int:
        return max(0, self._counted.value)

    async def __aenter__(self) -> RawSubscriber:
        self._process.start()
        async with asyncio.timeout(30):
            while self._counted.value != -1:
                if not self._process.is_alive():
                    raise RuntimeError("the raw subscriber exited at start")
                await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._process.join, 10)
        if self._process.is_alive():
            self._process.kill()
