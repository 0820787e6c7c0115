"""The alarm session's cost per message, printed, never asserted.

    .venv/bin/python -m bench.alarm_session [--count 20000]

A private Mosquitto, the ingest's alarm session (mqtt/persistent_session.py: persistent, MQTT 5
receive maximum 100, PUBACK when the application says) with a handler that only PUBACKs:

- backlog: COUNT QoS 1 alarm-topic messages published while the session is away, held by the
  broker; then the session connects and drains them. Wall and this process's CPU time from the
  connection to the last message handled.
- live: the session connected, COUNT messages published from another connection of this
  process (its CPU counts too, so this is an upper bound for the session).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import time
import uuid

from telecare.core.metrics import Metrics
from telecare.core.mqtt_url import BrokerAddress
from telecare.mqtt.client import Message, connect
from telecare.mqtt.persistent_session import Link, MqttSession
from tests.brokers import PrivateBroker

PAYLOAD = b'{"msg_id":"a0000000100001","ts":"2026-12-06T00:00:00.000Z","seq":1,"event":"fall"}'
FILTERS = [("telecare/v1/+/alarm", 1)]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _publish(broker: BrokerAddress, count: int) -> None:
    conn = await connect(broker, client_id=f"bench-load-{uuid.uuid4().hex[:6]}")
    pending = []
    for n in range(count):
        pending.append(conn.publish(f"telecare/v1/dev-{n % 500:04d}/alarm", PAYLOAD, qos=1))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await conn.disconnect()


class _Counter:
    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.handled = 0
        self.done = asyncio.Event()

    async def handle(self, link: Link, message: Message) -> None:
        link.puback(message)
        self.handled += 1
        if self.handled >= self.wanted:
            self.done.set()


async def _measure(broker: BrokerAddress, count: int, mode: str) -> str:
    identifier = f"bench-alarms-{uuid.uuid4().hex[:6]}"
    counter = _Counter(count)

    def session() -> MqttSession:
        return MqttSession(
            broker,
            name="alarms",
            identifier=identifier,
            subscriptions=FILTERS,
            metrics=Metrics(),
            queue_max=10_000,
            manual_ack=True,
            receive_maximum=100,
        )

    first = session()
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(first.run(counter.handle))
        await asyncio.wait_for(first.connected.wait(), 10)
        if mode == "backlog":  # away while the broker takes the burst, then drain it
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await _publish(broker, count)
            cpu0, wall0 = _cpu_s(), time.perf_counter()
            running = tg.create_task(session().run(counter.handle))
        else:
            cpu0, wall0 = _cpu_s(), time.perf_counter()
            tg.create_task(_publish(broker, count))
        await asyncio.wait_for(counter.done.wait(), 300)
        cpu_s, wall_s = _cpu_s() - cpu0, time.perf_counter() - wall0
        running.cancel()
    return (
        f"{mode:8} {count} messages in {wall_s:.2f} s ({count / wall_s:,.0f}/s), "
        f"CPU {cpu_s:.2f} s = {cpu_s / count * 1e6:.0f} us a message"
    )


async def main(count: int) -> None:
    for mode in ("backlog", "live"):
        with PrivateBroker() as broker:
            print(await _measure(broker.address, count, mode), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().count))
