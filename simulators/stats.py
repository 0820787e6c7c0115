"""Counters the fleet shares with its progress reporter."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FleetStats:
    connected: set[str] = field(default_factory=set)
    heartbeats_sent: int = 0
    alarms_sent: int = 0
    alarm_resends: int = 0
    alarms_acked: int = 0
    reconnects: int = 0

    def line(self, total_devices: int) -> str:
        return (
            f"devices connected {len(self.connected)}/{total_devices}, "
            f"heartbeats sent {self.heartbeats_sent}, "
            f"alarms sent {self.alarms_sent} (resends {self.alarm_resends}), "
            f"acked {self.alarms_acked}, reconnects {self.reconnects}"
        )
