"""Alert types of docs/PROTOCOL.md section 3 and their severities."""

from __future__ import annotations

from enum import StrEnum


class AlertType(StrEnum):
    HEARTBEAT_MISSED = "heartbeat_missed"
    MIGRATION_DROPOUT = "migration_dropout"
    CONNECTION_LOST = "connection_lost"
    MAINS_POWER_LOST = "mains_power_lost"
    BATTERY_LOW = "battery_low"
    PERIPHERAL_LOST = "peripheral_lost"
    PERIPHERAL_BATTERY_LOW = "peripheral_battery_low"
    ALARM_UNHANDLED = "alarm_unhandled"
    FLAPPING = "flapping"
    AREA_OUTAGE = "area_outage"
    ALERT_WRITER_STALLED = "alert_writer_stalled"
    CERTIFICATE_EXPIRING = "certificate_expiring"


SEVERITY: dict[AlertType, str] = {
    AlertType.HEARTBEAT_MISSED: "high",
    AlertType.MIGRATION_DROPOUT: "critical",
    AlertType.CONNECTION_LOST: "medium",
    AlertType.MAINS_POWER_LOST: "medium",
    AlertType.BATTERY_LOW: "medium",
    AlertType.PERIPHERAL_LOST: "high",
    AlertType.PERIPHERAL_BATTERY_LOW: "low",
    AlertType.ALARM_UNHANDLED: "critical",
    AlertType.FLAPPING: "medium",
    AlertType.AREA_OUTAGE: "critical",
    AlertType.ALERT_WRITER_STALLED: "critical",
    AlertType.CERTIFICATE_EXPIRING: "medium",
}

# Alerts a device's next heartbeat clears.
SILENCE_TYPES = (AlertType.HEARTBEAT_MISSED, AlertType.MIGRATION_DROPOUT, AlertType.CONNECTION_LOST)

# Migration stages during which a silent device is a migration drop-out.
MIGRATING_STAGES = frozenset({"in_progress", "verifying"})
