"""The telemetry session: heartbeats and status messages into bounded buffers, bad input into
the quarantine. Nothing here waits for the database: the hot path (a registered device's
heartbeat) is synchronous, and a device the directory does not know is looked up in the
background, once however many of its messages arrive meanwhile (they wait for the answer, in
order), at most `_LOOKUPS` devices at once. The messages waiting for lookups are bounded
(`_WAITING_MAX`); beyond, a message is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from telecare.core.coarse_clock import CoarseClock
from telecare.core.metrics import Metrics
from telecare.ingest.directory import DeviceDirectory
from telecare.ingest.heartbeats import HeartbeatRow, HeartbeatWriter
from telecare.ingest.quarantine import Quarantine
from telecare.ingest.status import StatusRow, StatusWriter
from telecare.protocol.canary import Canary, is_canary
from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import BadTopic, Heartbeat, MessageKind, Status, parse_topic
from telecare.protocol.telemetry_observer import TelemetryObserver

log = logging.getLogger(__name__)

_LOOKUPS = 32
_TELEMETRY = frozenset({MessageKind.HEARTBEAT, MessageKind.STATUS})
_COUNTS_EVERY_S = 1.0
_WAITING_MAX = 20_000


class _Waiting(NamedTuple):
    topic: str
    body: object
    payload: bytes
    received_at: datetime


class TelemetryIntake:
    def __init__(
        self,
        directory: DeviceDirectory,
        quarantine: Quarantine,
        metrics: Metrics,
        *,
        heartbeats: HeartbeatWriter,
        statuses: StatusWriter,
        observers: Sequence[TelemetryObserver],
        canary: Canary | None = None,
    ) -> None:
        self._directory = directory
        self._quarantine = quarantine
        self._metrics = metrics
        self._heartbeats = heartbeats
        self._statuses = statuses
        self._observers = observers  # the ingest's list: observers added later are told too
        self._canary = canary
        self._lookups = asyncio.Semaphore(_LOOKUPS)
        self._waiting: dict[str, list[_Waiting]] = {}  # device -> messages awaiting its lookup
        self._waiting_count = 0
        # Counted with plain integers on the hot path and added to /metrics once a second
        # (`run`): a Prometheus counter takes a lock on every increment.
        self._received = {kind: metrics.messages_received.labels(kind.value) for kind in _TELEMETRY}
        self._counts = dict.fromkeys(_TELEMETRY, 0)
        self._repeats = metrics.messages_received.labels("heartbeat_duplicate")
        self._clock = CoarseClock()

    async def run(self) -> None:
        """Until cancelled: the counts into /metrics, every second and at the end."""
        try:
            while True:
                await asyncio.sleep(_COUNTS_EVERY_S)
                self._flush_counts()
        finally:
            self._flush_counts()

    def _flush_counts(self) -> None:
        for kind, count in self._counts.items():
            if count:
                self._received[kind].inc(count)
                self._counts[kind] = 0

    def handle(self, tg: asyncio.TaskGroup, topic: str, payload: bytes) -> None:
        """One message as read from the socket (synchronous: nothing here waits)."""
        received_at = self._clock.now()
        try:
            parsed = parse_topic(topic)
        except BadTopic as exc:
            if is_canary(topic):
                if self._canary is not None:
                    # In order with the telemetry: everything the broker took before is read.
                    self._canary.received(topic, payload)
                return
            if _is_alarm_topic(topic):
                return  # the alarm session quarantines it
            self._metrics.messages_received.labels("unknown").inc()
            self._quarantine.reject(
                topic=topic, device_id=None, reason="bad_topic", detail=exc.why, payload=payload
            )
            return
        if parsed.kind not in _TELEMETRY:
            return  # our own acknowledgements; alarms come on their own session
        self._counts[parsed.kind] += 1
        try:
            body = decode(parsed.kind, payload)
        except Rejection as exc:
            self._quarantine.refuse(topic, parsed.device_id, exc, payload)
            return
        known = self._directory.known(parsed.device_id)
        if known is True:
            self._take(parsed.device_id, body, received_at)  # the hot path: no await
        elif known is None:
            self._look_up(tg, topic, parsed.device_id, body, payload, received_at)
        else:
            self._unregistered(topic, parsed.device_id, payload)

    def _look_up(
        self,
        tg: asyncio.TaskGroup,
        topic: str,
        device_id: str,
        body: object,
        payload: bytes,
        received_at: datetime,
    ) -> None:
        """A device the directory has not heard of: ask the database, without waiting for it."""
        if self._waiting_count >= _WAITING_MAX:
            self._metrics.write_dropped.labels(_what(body), "lookups_busy").inc()
            return
        self._waiting_count += 1
        waiting = self._waiting.get(device_id)
        if waiting is not None:  # its lookup is under way
            waiting.append(_Waiting(topic, body, payload, received_at))
            return
        self._waiting[device_id] = [_Waiting(topic, body, payload, received_at)]
        tg.create_task(self._look_up_and_take(device_id), name=f"ingest.lookup[{device_id}]")

    async def _look_up_and_take(self, device_id: str) -> None:
        try:
            async with self._lookups:
                registered = await self._directory.is_registered(device_id)
        except Exception as exc:
            log.warning("device lookup failed device=%s error=%s", device_id, exc)
            for message in self._settle(device_id):
                self._metrics.write_dropped.labels(_what(message.body), "lookup_failed").inc()
            return
        for message in self._settle(device_id):
            if registered:
                self._take(device_id, message.body, message.received_at)
            else:
                self._unregistered(message.topic, device_id, message.payload)

    def _settle(self, device_id: str) -> list[_Waiting]:
        """The messages that waited for the device's lookup, in arrival order."""
        waiting = self._waiting.pop(device_id, [])
        self._waiting_count -= len(waiting)
        return waiting

    def _unregistered(self, topic: str, device_id: str, payload: bytes) -> None:
        reason, detail = self._directory.refusal(device_id)
        self._quarantine.reject(
            topic=topic, device_id=device_id, reason=reason, detail=detail, payload=payload
        )

    def _take(self, device_id: str, body: object, received_at: datetime) -> None:
        if isinstance(body, Heartbeat):
            if self._directory.is_repeat(device_id, body.msg_id):
                self._repeats.inc()
                return
            self._heartbeats.add(HeartbeatRow.of(device_id, received_at, body))
            for observer in self._observers:
                observer.heartbeat_received(device_id, received_at, body)
        elif isinstance(body, Status):
            for observer in self._observers:
                observer.status_received(device_id, received_at, body)
            self._statuses.add(StatusRow(received_at, device_id, body.state, body.ts, body.reason))


def _what(body: object) -> str:
    return "heartbeats" if isinstance(body, Heartbeat) else "statuses"


def _is_alarm_topic(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 4 and parts[-1] == MessageKind.ALARM.value
