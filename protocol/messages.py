"""The device wire protocol of docs/PROTOCOL.md section 2: topics and payload models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from telecare.core.text import NUL_FREE

TOPIC_ROOT = "telecare/v1"
MAX_PAYLOAD_BYTES = 4096
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
# The backend's own MQTT sessions use client ids that start with this (`telecare-ingest`,
# `telecare-alerts-...`); no device may be registered with such an id, since a broker that
# makes a device's client id its id (deploy/mosquitto/production.conf) would otherwise let that
# device end the backend's session and throw its queued alarms away.
RESERVED_ID_PREFIX = "telecare"
# Counters are stored as PostgreSQL bigint.
MAX_SEQ = 2**63 - 1


DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
MsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NUL_FREE)]
# Any device clock is accepted (it may be wrong), as long as it is a time in years 1-9999 once
# converted to UTC: what the database stores and gives back. (Bounds checked by pydantic's core,
# in UTC: no Python call per message.)
Timestamp = Annotated[
    AwareDatetime,
    Field(
        strict=False,
        ge=datetime(1, 1, 1, tzinfo=UTC),
        le=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ),
]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


class MessageKind(StrEnum):
    HEARTBEAT = "heartbeat"
    ALARM = "alarm"
    STATUS = "status"
    ACK = "ack"


class AlarmEvent(StrEnum):
    PENDANT = "pendant"
    PULL_CORD = "pull_cord"
    FALL = "fall"
    SMOKE = "smoke"
    HEAT = "heat"
    CO = "co"
    GAS = "gas"
    FLOOD = "flood"
    TEMPERATURE_LOW = "temperature_low"
    TEMPERATURE_HIGH = "temperature_high"
    BED_EXIT = "bed_exit"
    CHAIR_EXIT = "chair_exit"
    DOOR_EXIT = "door_exit"
    BOGUS_CALLER = "bogus_caller"
    EPILEPSY = "epilepsy"
    INACTIVITY = "inactivity"
    MEDICATION_MISSED = "medication_missed"
    PANIC = "panic"
    TAMPER = "tamper"
    BATTERY_LOW = "battery_low"
    MAINS_FAIL = "mains_fail"
    MAINS_RESTORE = "mains_restore"
    PERIPHERAL_BATTERY_LOW = "peripheral_battery_low"
    PERIPHERAL_LOST = "peripheral_lost"
    TEST = "test"
    CANCEL = "cancel"


# A person may be in danger right now: these go to the top of the operators' queue.
LIFE_SAFETY_EVENTS = frozenset(
    {
        AlarmEvent.FALL,
        AlarmEvent.SMOKE,
        AlarmEvent.HEAT,
        AlarmEvent.CO,
        AlarmEvent.GAS,
        AlarmEvent.PENDANT,
        AlarmEvent.PULL_CORD,
        AlarmEvent.EPILEPSY,
        AlarmEvent.PANIC,
    }
)
# Technical or informational events: no person asked for help.
TECHNICAL_EVENTS = frozenset(
    {
        AlarmEvent.BATTERY_LOW,
        AlarmEvent.MAINS_FAIL,
        AlarmEvent.MAINS_RESTORE,
        AlarmEvent.PERIPHERAL_BATTERY_LOW,
        AlarmEvent.PERIPHERAL_LOST,
        AlarmEvent.TEST,
        AlarmEvent.CANCEL,
        AlarmEvent.TAMPER,
    }
)


def alarm_severity(event: AlarmEvent) -> str:
    """Severity an operator sees for an alarm event."""
    if event in LIFE_SAFETY_EVENTS:
        return "critical"
    if event in TECHNICAL_EVENTS:
        return "low"
    return "high"


class _Payload(BaseModel):
    # Unknown extra fields are ignored (forward compatible); strict types otherwise.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Peripheral(_Payload):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NUL_FREE)]
    kind: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=NUL_FREE)]
    battery_pct: Annotated[int, Field(ge=0, le=100)] | None = None
    last_seen_s: Seq


class Heartbeat(_Payload):
    msg_id: MsgId
    ts: Timestamp
    seq: Seq
    interval_s: Annotated[int, Field(ge=10, le=604800)]
    power: Literal["mains", "battery"]
    battery_pct: Annotated[int, Field(ge=0, le=100)] | None
    signal_dbm: Annotated[int, Field(ge=-150, le=0)] | None
    network: Literal["ethernet", "wifi", "4g", "5g", "lte-m", "nb-iot", "pstn-adapter"]
    firmware: Annotated[str, StringConstraints(max_length=32, pattern=NUL_FREE)] | None = None
    peripherals: list[Peripheral] | None = None


class Alarm(_Payload):
    msg_id: MsgId
    ts: Timestamp
    seq: Seq
    event: Annotated[AlarmEvent, Field(strict=False)]
    peripheral: Annotated[str, StringConstraints(max_length=64, pattern=NUL_FREE)] | None = None
    detail: Annotated[str, StringConstraints(max_length=256, pattern=NUL_FREE)] | None = None


class Status(_Payload):
    state: Literal["online", "offline"]
    ts: Timestamp | None = None
    reason: Annotated[str, StringConstraints(max_length=256, pattern=NUL_FREE)] | None = None


class Ack(_Payload):
    msg_id: str
    result: Literal["accepted", "duplicate", "rejected"]
    ts: datetime
    reason: str | None = None


class Topic(NamedTuple):
    device_id: str
    kind: MessageKind


class BadTopic(ValueError):
    """A topic outside `telecare/v1/{device_id}/{kind}`."""

    def __init__(self, topic: str, why: str) -> None:
        super().__init__(f"{why}: {topic!r}")
        self.topic = topic
        self.why = why


_KINDS = {kind.value: kind for kind in MessageKind}
# The whole topic in one match: this runs for every message the ingest reads.
_TOPIC_RE = re.compile(rf"{re.escape(TOPIC_ROOT)}/({DEVICE_ID_PATTERN[1:-1]})/({'|'.join(_KINDS)})")


def parse_topic(topic: str) -> Topic:
    match = _TOPIC_RE.fullmatch(topic)
    if match is not None:
        return Topic(match[1], _KINDS[match[2]])
    parts = topic.split("/")  # refused: say why
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise BadTopic(topic, "topic is not telecare/v1/{device_id}/{kind}")
    if not _DEVICE_ID_RE.fullmatch(parts[2]):
        raise BadTopic(topic, "device id in topic is not valid")
    raise BadTopic(topic, f"unknown message kind {parts[3]!r}")


def topic_for(device_id: str, kind: MessageKind) -> str:
    return f"{TOPIC_ROOT}/{device_id}/{kind.value}"


def is_valid_device_id(device_id: str) -> bool:
    return _DEVICE_ID_RE.fullmatch(device_id) is not None


def is_reserved_id(device_id: str) -> bool:
    """Whether the id is kept for the backend's own sessions (RESERVED_ID_PREFIX)."""
    return device_id.lower().startswith(RESERVED_ID_PREFIX)
