"""A device as read from the database, with its live status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

DEVICE_COLUMNS = f"""
d.device_id, d.serial, d.model, d.manufacturer, d.resident_ref, d.address, d.postcode,
d.postcode_district, d.heartbeat_interval_s, d.heartbeat_grace_s, d.migration_stage,
d.stage_changed_at, d.registered_at, d.updated_at, d.decommissioned_at,
d.mqtt_password_set_at, ({STATUS_SQL}) AS status, ({DEADLINE_SQL}) AS heartbeat_deadline_at,
s.last_heartbeat_at, s.power, s.battery_pct, s.signal_dbm, s.network, s.firmware, s.peripherals,
s.connection, s.connection_at
"""

DEVICE_FROM = "devices d LEFT JOIN device_state s USING (device_id)"


@dataclass(frozen=True)
class DeviceRecord:
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
    updated_at: datetime
    decommissioned_at: datetime | None
    mqtt_password_set_at: datetime
    status: str
    heartbeat_deadline_at: datetime
    last_heartbeat_at: datetime | None
    power: str | None
    battery_pct: int | None
    signal_dbm: int | None
    network: str | None
    firmware: str | None
    peripherals: list[dict[str, Any]] | None
    connection: str | None
    connection_at: datetime | None
