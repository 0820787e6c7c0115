"""The alarm session: an alarm is PUBACKed to the broker only once it is committed and answered.

Until then the broker keeps it (and redelivers it if the ingest reconnects or dies), so the
ingest never takes an alarm it cannot commit: while the database is away the alarms wait at
the broker, not in this process. What this process holds is bounded by the broker's in-flight
window for the session and by `workers` alarms being stored at once.

A device re-sends an unacknowledged alarm with the same msg_id. A repeat that arrives while the
first copy is still being stored is not stored again: it is PUBACKed with the first, which
answers the device once (`accepted`, or `duplicate` if it was stored before).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from datetime import UTC, datetime

from telecare.alarms.store import AlarmRefused, AlarmStore
from telecare.core.metrics import Metrics
from telecare.core.retry import until_written
from telecare.ingest.directory import DeviceDirectory
from telecare.ingest.quarantine import Quarantine
from telecare.mqtt.client import Message
from telecare.mqtt.persistent_session import Link
from telecare.protocol.decode import Rejection, decode
from telecare.protocol.messages import Alarm, BadTopic, MessageKind, parse_topic

log = logging.getLogger(__name__)

Copies = list[tuple[Link, Message]]


class AlarmIntake:
    def __init__(
        self,
        store: AlarmStore,
        directory: DeviceDirectory,
        quarantine: Quarantine,
        metrics: Metrics,
        *,
        workers: int,
        attempt_timeout_s: float,
    ) -> None:
        self._store = store
        self._directory = directory
        self._quarantine = quarantine
        self._metrics = metrics
        self._attempt_timeout_s = attempt_timeout_s
        self._slots = asyncio.Semaphore(workers)
        self._in_progress: dict[tuple[str, str], Copies] = {}

    def __len__(self) -> int:
        return len(self._in_progress)

    async def handle(self, tg: asyncio.TaskGroup, link: Link, message: Message) -> None:
        topic = message.topic
        payload = message.payload
        received_at = datetime.now(UTC)
        try:
            device_id = parse_topic(topic).device_id
        except BadTopic as exc:
            self._metrics.messages_received.labels("unknown").inc()
            self._quarantine.reject(
                topic=topic, device_id=None, reason="bad_topic", detail=exc.why, payload=payload
            )
            link.puback(message)
            return
        self._metrics.messages_received.labels(MessageKind.ALARM.value).inc()
        try:
            alarm = decode(MessageKind.ALARM, payload)
        except Rejection as exc:
            self._quarantine.refuse(topic, device_id, exc, payload)
            tg.create_task(
                self._refuse([(link, message)], device_id, _msg_id_of(payload), exc.reason),
                name=f"ingest.reject_ack[{device_id}]",
            )
            return
        assert isinstance(alarm, Alarm)
        key = (device_id, alarm.msg_id)
        copies = self._in_progress.get(key)
        if copies is not None:
            copies.append((link, message))
            self._metrics.messages_received.labels("alarm_repeat_in_progress").inc()
            return
        await self._slots.acquire()
        self._in_progress[key] = [(link, message)]
        self._metrics.alarms_in_progress.set(len(self._in_progress))
        tg.create_task(
            self._take(key, alarm, received_at, topic, payload),
            name=f"ingest.alarm[{device_id}]",
        )

    async def _take(
        self,
        key: tuple[str, str],
        alarm: Alarm,
        received_at: datetime,
        topic: str,
        payload: bytes,
    ) -> None:
        device_id = key[0]
        try:
            registered = await until_written(
                functools.partial(self._directory.is_registered, device_id),
                what="device_lookup",
                context=f"device={device_id}",
                metrics=self._metrics,
                attempt_timeout_s=self._attempt_timeout_s,
            )
            if not registered:
                reason, detail = self._directory.refusal(device_id)
            else:
                try:
                    await self._store.take(device_id, alarm, received_at)
                    return
                except AlarmRefused as exc:
                    reason, detail = "refused", str(exc)
                    log.error("alarm refused device=%s msg_id=%s %s", device_id, alarm.msg_id, exc)
            self._quarantine.reject(
                topic=topic, device_id=device_id, reason=reason, detail=detail, payload=payload
            )
            await self._store.acknowledge(device_id, alarm.msg_id, "rejected", reason)
        except Exception:
            # A bug, not a database outage: logged, and PUBACKed below all the same, so that one
            # alarm cannot hold a slot of the broker's window; the device re-sends it.
            log.exception("alarm handling failed device=%s msg_id=%s", device_id, alarm.msg_id)
        finally:
            # Cancelled (shutdown): nothing is PUBACKed, the broker redelivers to the next run.
            copies = self._in_progress.pop(key)
            self._slots.release()
            self._metrics.alarms_in_progress.set(len(self._in_progress))
            if not _cancelling():
                for link, message in copies:
                    link.puback(message)

    async def _refuse(self, copies: Copies, device_id: str, msg_id: str, reason: str) -> None:
        try:
            await self._store.acknowledge(device_id, msg_id, "rejected", reason)
        finally:
            for link, message in copies:
                link.puback(message)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _msg_id_of(payload: bytes) -> str:
    """The msg_id of a rejected alarm, when one can be read, so the device can match the ack."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return ""
    msg_id = data.get("msg_id") if isinstance(data, dict) else None
    if not isinstance(msg_id, str):
        return ""
    try:
        msg_id.encode()
    except UnicodeEncodeError:  # a lone surrogate: the ack could not be sent as JSON
        return ""
    return msg_id
