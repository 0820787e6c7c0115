"""The thresholds of docs/ALERTS.md, as one value the engine, the API and the simulator share."""

from __future__ import annotations

from dataclasses import dataclass

from telecare.alerts.types import AlertType
from telecare.core.settings import Settings

# The alert types this engine raises: all of docs/ALERTS.md. The simulator's --check counts an
# expected alert of any type missing here as "expected to miss (not built yet)".
RAISED_TYPES: tuple[AlertType, ...] = tuple(AlertType)


@dataclass(frozen=True)
class AlertRules:
    alarm_ack_target_s: int
    battery_low_pct: int
    battery_ok_pct: int
    peripheral_supervision_s: int
    flapping_drops: int
    flapping_window_s: int
    area_min_devices: int
    area_min_share: float
    area_window_s: int
    raised_types: tuple[AlertType, ...] = RAISED_TYPES

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        return cls(
            alarm_ack_target_s=settings.alarm_ack_target_s,
            battery_low_pct=settings.battery_low_pct,
            battery_ok_pct=settings.battery_ok_pct,
            peripheral_supervision_s=settings.peripheral_supervision_s,
            flapping_drops=settings.flapping_drops,
            flapping_window_s=settings.flapping_window_s,
            area_min_devices=settings.area_min_devices,
            area_min_share=settings.area_min_share,
            area_window_s=settings.area_window_s,
        )
