"""A device as read from the database, with its live status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from telecare.db.record_columns import From, select_list

# When the device is overdue unless a heartbeat arrives (docs/PROTOCOL.md section 3): interval
# + grace after the later of its last heartbeat and its registration or last migration-stage
# change.
DEADLINE_SQL = """
greatest(s.last_heartbeat_at, d.stage_changed_at)
+ make_interval(secs => d.heartbeat_interval_s
                        + coalesce(d.heartbeat_grace_s, least(d.heartbeat_interval_s, 900)))
"""

# Live status, computed in SQL so lists can filter and count by it (docs/PROTOCOL.md section 4).
# offline: the broker delivered the device's Last Will after its last heartbeat.
# never_seen: registered but no heartbeat yet. overdue: past interval + grace.
STATUS_SQL = f"""
CASE
    WHEN d.decommissioned_at IS NOT NULL THEN 'decommissioned'
    WHEN s.connection = 'offline'
         AND s.connection_at >= coalesce(s.last_heartbeat_at, '-infinity') THEN 'offline'
    WHEN s.last_heartbeat_at IS NULL THEN 'never_seen'
    WHEN ({DEADLINE_SQL}) < now() THEN 'overdue'
    ELSE 'online'
END
"""

DEVICE_FROM = "devices d LEFT JOIN device_state s USING (device_id)"

STATE = From("s")  # a column of device_state (the device's last report), not of devices
INTERNAL = Field(exclude=True)  # kept for the service, left out of the API's answers


@dataclass(frozen=True)
class DeviceRecord:
    """A device as read, and the one declaration of its fields: `DEVICE_COLUMNS` is made from
    them and the API's `DevicePublic` derives from this class (a column is added here and in its
    migration)."""

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
    updated_at: Annotated[datetime, INTERNAL]
    decommissioned_at: datetime | None
    mqtt_password_set_at: datetime
    credential_kind: Annotated[
        str, Field(description="how the device proves who it is: `certificate` or `password`")
    ]
    status: str
    heartbeat_deadline_at: Annotated[
        datetime,
        Field(
            description=(
                "when the device is overdue unless a heartbeat arrives (docs/PROTOCOL.md section 3)"
            )
        ),
    ]
    last_heartbeat_at: Annotated[datetime | None, STATE]
    power: Annotated[str | None, STATE]
    battery_pct: Annotated[int | None, STATE]
    signal_dbm: Annotated[int | None, STATE]
    network: Annotated[str | None, STATE]
    firmware: Annotated[str | None, STATE]
    peripherals: Annotated[list[dict[str, Any]] | None, STATE]
    connection: Annotated[str | None, STATE]
    connection_at: Annotated[datetime | None, STATE, INTERNAL]


# Each field as `d.<field>` (`s.<field>` if marked STATE), but for these two computed ones.
DEVICE_COLUMNS = select_list(
    DeviceRecord,
    table="d",
    computed={"status": STATUS_SQL, "heartbeat_deadline_at": DEADLINE_SQL},
)
