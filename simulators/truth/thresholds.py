"""The alert thresholds in force (GET /api/v1/alert-rules), as the predictor reads them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from telecare.protocol.messages import TECHNICAL_EVENTS

SILENCE_TYPES = ("heartbeat_missed", "migration_dropout", "connection_lost")
OVERDUE_TYPES = ("heartbeat_missed", "migration_dropout")
MAINS_TYPES = ("mains_power_lost",)
MIGRATING_STAGES = frozenset({"in_progress", "verifying"})
TECHNICAL = frozenset(e.value for e in TECHNICAL_EVENTS)
ALL_TYPES = (
    "heartbeat_missed",
    "migration_dropout",
    "connection_lost",
    "mains_power_lost",
    "battery_low",
    "peripheral_lost",
    "peripheral_battery_low",
    "alarm_unhandled",
    "flapping",
    "area_outage",
)


@dataclass(frozen=True)
class Rules:
    alarm_ack_target_s: float = 60
    battery_low_pct: int = 20
    battery_ok_pct: int = 25
    peripheral_supervision_s: float = 3600
    flapping_drops: int = 3
    flapping_window_s: float = 900
    area_min_devices: int = 5
    area_min_share: float = 0.2
    area_window_s: float = 300

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rules:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def silence_window_s(interval_s: int, grace_s: int | None) -> int:
    """docs/PROTOCOL.md section 3: overdue after interval + grace; grace defaults to
    min(interval, 900)."""
    return interval_s + (grace_s if grace_s is not None else min(interval_s, 900))
