"""Counters the fleet shares with its progress line."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field


@dataclass
class FleetStats:
    devices: int = 0
    connected: int = 0
    heartbeats_sent: int = 0
    messages_sent: int = 0
    pubacks: int = 0
    alarms_sent: int = 0
    alarm_resends: int = 0
    alarms_acked: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    _last_at: float = field(default_factory=time.monotonic)
    _last_sent: int = 0
    _last_cpu: float = field(default_factory=time.process_time)

    def puback(self, _: object) -> None:
        self.pubacks += 1

    def line(self) -> str:
        """One progress line; the rate and CPU are since the previous line."""
        now, cpu = time.monotonic(), time.process_time()
        elapsed = max(1e-6, now - self._last_at)
        rate = (self.messages_sent - self._last_sent) / elapsed
        cpu_pct = 100 * (cpu - self._last_cpu) / elapsed
        self._last_at, self._last_sent, self._last_cpu = now, self.messages_sent, cpu
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return (
            f"connected {self.connected}/{self.devices}, sent {self.messages_sent} "
            f"(heartbeats {self.heartbeats_sent}, alarms {self.alarms_sent}, "
            f"resends {self.alarm_resends}), acked {self.pubacks} puback / "
            f"{self.alarms_acked} alarm, reconnects {self.reconnects}, "
            f"rate {rate:.0f} msg/s, cpu {cpu_pct:.0f}%, max rss {rss_mb:.0f} MB"
        )
