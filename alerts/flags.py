"""One integer of bit flags per tracked device: its condition and which of its alerts are open.

An "open" bit means the engine raised that alert and has not yet resolved it: it stands for the
episode of the condition, so an operator who resolves an alert by hand does not make the engine
raise it again before the condition has cleared once.
"""

from __future__ import annotations

from telecare.alerts.types import AlertType

OVERDUE = 1 << 0  # no heartbeat for interval + grace
OFFLINE = 1 << 1  # the last status was offline (the Last Will, or a clean offline)
MIGRATING = 1 << 2  # migration stage in_progress or verifying
ON_BATTERY = 1 << 3  # the last heartbeat said power: battery

_KEYED = (
    AlertType.HEARTBEAT_MISSED,
    AlertType.MIGRATION_DROPOUT,
    AlertType.CONNECTION_LOST,
    AlertType.MAINS_POWER_LOST,
    AlertType.BATTERY_LOW,
    AlertType.PERIPHERAL_LOST,
    AlertType.PERIPHERAL_BATTERY_LOW,
    AlertType.FLAPPING,
)
OPEN: dict[AlertType, int] = {t: 1 << (4 + n) for n, t in enumerate(_KEYED)}

OPEN_SILENCE = (
    OPEN[AlertType.HEARTBEAT_MISSED]
    | OPEN[AlertType.MIGRATION_DROPOUT]
    | OPEN[AlertType.CONNECTION_LOST]
)
# Anything a heartbeat may have to change besides the deadline: the slow path of a heartbeat.
RETURNING = OVERDUE | OFFLINE | OPEN_SILENCE


def open_types(flags: int) -> list[AlertType]:
    return [t for t, bit in OPEN.items() if flags & bit]
