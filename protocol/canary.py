"""The feed canary: proof that the telemetry feed delivers, end to end, and up to when.

The service publishes a small QoS 1 message to itself through the broker every
`CANARY_INTERVAL_S` and expects it back on the session that reads telemetry, through the same
code. The broker delivers a session's messages in the order it took them, so a canary coming
back proves that everything the broker took before it was sent has been read: the backlog a
persistent session accumulated while the service was down, or while the broker was frozen or
the connection was dead. `heard_until` is when the newest returned canary was sent; the engine
judges no deadline later than that, since silence after it may only be a feed that stopped.

The topic is `telecare/v1/_canary-{owner}/ack`: under the subscription the ingest already has
(`telecare/v1/#`), in the shape of the topics the backend already publishes (acks, allowed to
the backend's broker account by deploy/mosquitto/dynsec-init.sh), and no device can publish it
(device ids begin with a letter or a digit, and a device may publish only under its own id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable

from telecare.protocol.messages import TOPIC_ROOT

log = logging.getLogger(__name__)

CANARY_PREFIX = f"{TOPIC_ROOT}/_canary-"
Publish = Callable[[str, bytes], Awaitable[None]]


def is_canary(topic: str) -> bool:
    return topic.startswith(CANARY_PREFIX)


class Canary:
    """`run()` publishes; `received()` is called for every canary topic read from the feed.

    Live (`is_live()`) while a canary sent within the last two intervals has come back.
    """

    def __init__(
        self,
        *,
        interval_s: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.topic = f"{CANARY_PREFIX}{owner or uuid.uuid4().hex[:12]}/ack"
        self._clock = clock
        self._publish: Publish | None = None
        self._seq = 0
        self._sent: dict[int, float] = {}  # seq -> when it was sent, until it is back
        self.heard_until = -math.inf  # when the newest canary that came back was sent
        self._probe = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        self.returned = 0

    def publish_with(self, publish: Publish) -> None:
        self._publish = publish

    def on_heard(self, listener: Callable[[], None]) -> None:
        """`listener()` is called whenever `heard_until` moves on."""
        self._listeners.append(listener)

    def is_live(self) -> bool:
        return self._clock() - self.heard_until <= 2 * self.interval_s

    def probe(self, after: float) -> None:
        """Send a canary now, not waiting for the interval, unless one sent at or after `after`
        is already on its way: the proof that everything up to `after` has been read."""
        if not any(sent_at >= after for sent_at in self._sent.values()):
            self._probe.set()

    def received(self, topic: str, payload: bytes) -> None:
        if topic != self.topic:
            return  # another process's canary
        try:
            seq = int(payload)
        except ValueError:
            return
        sent_at = self._sent.pop(seq, None)
        if sent_at is None:
            return
        for older in [s for s in self._sent if s < seq]:
            del self._sent[older]  # lost (a broker restart without its sessions)
        self.returned += 1
        if sent_at > self.heard_until:
            self.heard_until = sent_at
            for listener in self._listeners:
                listener()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._probe.wait(), timeout=self.interval_s)
            self._probe.clear()
            await self._send()

    async def _send(self) -> None:
        if self._publish is None:
            return
        self._seq += 1
        seq = self._seq
        self._sent[seq] = self._clock()
        if len(self._sent) > 100:  # none came back for long: keep the newest only
            for old in sorted(self._sent)[:-100]:
                del self._sent[old]
        try:
            async with asyncio.timeout(self.interval_s):
                await self._publish(self.topic, str(seq).encode())
        except Exception as exc:  # not connected, or the broker does not answer
            self._sent.pop(seq, None)  # so that a probe sends another
            log.debug("canary not sent error=%s", exc)
