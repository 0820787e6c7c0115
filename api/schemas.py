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
from telecare.devices.certificates import DeviceCertificates, serial_hex
from telecare.devices.device_ca import IssuedCertificate
from telecare.devices.postcodes import normalise_postcode
from telecare.devices.records import DeviceRecord
from telecare.operator_queue.alerts import AlertRecord
from telecare.protocol.messages import DEVICE_ID_PATTERN, RESERVED_ID_PREFIX, is_reserved_id

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
    credential: Literal["certificate", "password"] | None = Field(
        default=None,
        description="how the device will prove who it is; default: a certificate where device"
        " certificates are in use, else a password. `password` with certificates needs the"
        " broker's password listener (TELECARE_BROKER_PASSWORD_FILE)",
    )

    @field_validator("device_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if is_reserved_id(value):
            raise ValueError(
                f"device ids starting with {RESERVED_ID_PREFIX!r} are kept for the backend's"
                " own broker sessions"
            )
        return value


Csr = Annotated[
    str,
    Field(
        max_length=16_384,
        description="a PEM certificate signing request made on the device or by the"
        " technician's tool (EC P-256/P-384 or RSA >= 2048); its subject is replaced by"
        " CN=<device_id>. Without one, the key is generated and returned once.",
    ),
]


class DeviceRegistration(DeviceCreate):
    """POST /devices: a device, and with device certificates, optionally its own request."""

    csr: Csr | None = None

    def device_fields(self) -> dict[str, object]:
        return self.model_dump(exclude={"csr"})


class CertificateRequest(BaseModel):
    """POST /devices/{id}/certificate: re-issue, from the device's request or a new key."""

    model_config = ConfigDict(extra="forbid")

    csr: Csr | None = None


class CertificateRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["compromised", "withdrawn"] = Field(
        default="withdrawn",
        description="compromised: the key may be in other hands; withdrawn: taken out of use",
    )


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


class CertificateBundle(BaseModel):
    """What a device needs to connect, shown once: nothing here is kept but the serial."""

    serial: str = Field(description="hexadecimal, as openssl prints it")
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    private_key_pem: str | None = Field(
        description="only when the backend generated the key (no CSR): shown only here"
    )
    device_ca_pem: str = Field(description="the CA that signed the certificate")
    broker_ca_pem: str | None = Field(
        description="the CA to verify the broker with (TELECARE_MQTT_CA_FILE), when set"
    )


@dataclass(frozen=True)
class DeviceRegistered(DevicePublic):
    mqtt_password: Annotated[str, Field(description="shown only in this response")]
    certificate: Annotated[
        CertificateBundle | None,
        Field(description="with device certificates (TELECARE_BROKER_CREDENTIALS=certificates)"),
    ] = None


def certificate_bundle(issued: IssuedCertificate, ca: DeviceCertificates) -> CertificateBundle:
    return CertificateBundle(
        serial=serial_hex(issued.serial),
        fingerprint_sha256=issued.fingerprint_sha256,
        not_before=issued.not_before,
        not_after=issued.not_after,
        certificate_pem=issued.certificate_pem,
        private_key_pem=issued.private_key_pem,
        device_ca_pem=ca.ca.certificate_pem,
        broker_ca_pem=ca.broker_ca_pem,
    )


class CertificatePublic(BaseModel):
    serial: str = Field(description="hexadecimal, as openssl prints it")
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    status: Literal["active", "revoked", "expired"]
    key_source: Literal["csr", "generated"]
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    revocation_reason: str | None


class DeviceCredentialView(BaseModel):
    """GET /devices/{id}/credentials: how the device proves who it is, no secret."""

    device_id: str
    broker_credentials: Literal["none", "dynsec", "certificates"]
    mqtt_password_set_at: datetime
    certificates: list[CertificatePublic] = Field(description="newest first")


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
