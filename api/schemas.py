"""Request and response bodies of the HTTP API (PROTOCOL section 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.protocol import DEVICE_ID_PATTERN
from devices.postcodes import normalise_postcode

Severity = Literal["critical", "high", "medium", "low"]
MigrationStage = Literal["analogue", "scheduled", "in_progress", "verifying", "complete", "failed"]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    heartbeat_interval_s: Annotated[int, Field(ge=10, le=604800)]
    heartbeat_grace_s: Annotated[int, Field(ge=0, le=604800)] | None = None
    serial: ShortText | None = None
    model: ShortText | None = None
    manufacturer: ShortText | None = None
    resident_ref: ShortText | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    postcode: str | None = None
    migration_stage: MigrationStage = "analogue"

    @field_validator("postcode")
    @classmethod
    def _postcode(cls, value: str | None) -> str | None:
        return None if value is None else normalise_postcode(value)


class DevicePublic(BaseModel):
    device_id: str
    serial: str | None
    model: str | None
    manufacturer: str | None
    resident_ref: str | None
    address: str | None
    postcode: str | None
    postcode_district: str | None
    heartbeat_interval_s: int
    heartbeat_grace_s: int | None
    migration_stage: str
    stage_changed_at: datetime
    registered_at: datetime
    decommissioned_at: datetime | None
    status: str
    last_heartbeat_at: datetime | None
    power: str | None
    battery_pct: int | None
    signal_dbm: int | None
    network: str | None
    firmware: str | None
    peripherals: list[dict[str, Any]] | None
    connection: str | None


class DeviceRegistered(DevicePublic):
    mqtt_password: str = Field(description="shown only in this response")


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    actor: str
    note: str | None


class AlertPublic(BaseModel):
    id: int
    device_id: str | None
    area: str | None
    type: str
    severity: str
    state: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    details: dict[str, Any]
    history: list[HistoryEntry]


class AlarmPublic(BaseModel):
    id: int
    device_id: str
    msg_id: str
    event: str
    severity: str
    state: str
    device_ts: datetime
    seq: int
    peripheral: str | None
    detail: str | None
    received_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    history: list[HistoryEntry]


class QuarantinedPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str | None
    payload: str = Field(description="the payload as received, UTF-8 with replacement characters")
    payload_size: int
