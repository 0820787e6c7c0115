"""Request and response bodies of the HTTP API (docs/PROTOCOL.md section 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from telecare.core.text import Storable
from telecare.devices.postcodes import normalise_postcode
from telecare.protocol.messages import DEVICE_ID_PATTERN

Severity = Literal["critical", "high", "medium", "low"]
MigrationStage = Literal["analogue", "scheduled", "in_progress", "verifying", "complete", "failed"]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]


Interval = Annotated[int, Field(ge=10, le=604800, description="heartbeat period, seconds")]
Grace = Annotated[
    int, Field(ge=0, le=604800, description="seconds past the interval before overdue")
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), Storable]
Postcode = Annotated[str, Storable, AfterValidator(normalise_postcode)]
Note = Annotated[str, Field(max_length=2000), Storable]


class _DeviceDetails(BaseModel):
    """What describes a device besides its id and interval; all optional."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_grace_s: Grace | None = None
    serial: ShortText | None = None
    model: ShortText | None = None
    manufacturer: ShortText | None = None
    resident_ref: ShortText | None = None
    address: Address | None = None
    postcode: Postcode | None = None


class DeviceCreate(_DeviceDetails):
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    heartbeat_interval_s: Interval
    migration_stage: MigrationStage = "analogue"


class DeviceUpdate(_DeviceDetails):
    """PATCH: only the fields sent change; null clears an optional one. The id cannot change
    and the stage changes through POST /devices/{id}/migration."""

    heartbeat_interval_s: Interval | None = None

    @field_validator("heartbeat_interval_s", mode="before")
    @classmethod
    def _interval_required(cls, value: object) -> object:
        if value is None:
            raise ValueError("the heartbeat interval cannot be cleared")
        return value

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


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
    mqtt_password_set_at: datetime
    status: str
    heartbeat_deadline_at: datetime = Field(
        description=(
            "when the device is overdue unless a heartbeat arrives (docs/PROTOCOL.md section 3)"
        )
    )
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


class DeviceCredentials(BaseModel):
    device_id: str
    mqtt_password: str = Field(description="shown only in this response")
    mqtt_password_set_at: datetime


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
    group_id: int | None = Field(
        description="the area_outage alert this alert is grouped under, or null"
    )
    grouped: int = Field(description="for an area_outage: the alerts grouped under it now")
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
