"""Request and response bodies of the HTTP API (docs/PROTOCOL.md section 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

from telecare.alarms.queries import AlarmRecord
from telecare.core.text import Storable
from telecare.devices.postcodes import normalise_postcode
from telecare.devices.records import DeviceRecord
from telecare.operator_queue.alerts import AlertRecord
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


# A device, alert or alarm as the API answers it: its record's fields, declared once in the
# record with their descriptions, less those the record marks internal (`Field(exclude=True)`).
# A public class restates a field only to give the validated shape of JSON the record holds
# as read. Built from a record by `TypeAdapter(...).validate_python(vars(record))`.


@dataclass(frozen=True)
class DevicePublic(DeviceRecord):
    pass


@dataclass(frozen=True)
class DeviceRegistered(DevicePublic):
    mqtt_password: Annotated[str, Field(description="shown only in this response")]


class DeviceCredentials(BaseModel):
    device_id: str
    mqtt_password: str = Field(description="shown only in this response")
    mqtt_password_set_at: datetime


class HistoryEntry(TypedDict):
    at: datetime
    action: str
    actor: str
    note: str | None


@dataclass(frozen=True)
class AlertPublic(AlertRecord):
    history: list[HistoryEntry]


@dataclass(frozen=True)
class AlarmPublic(AlarmRecord):
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
