"""What the ingest tells the alert engine as messages arrive (in process or over MQTT)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from telecare.protocol.messages import Heartbeat, Status


class TelemetryObserver(Protocol):
    def heartbeat_received(self, device_id: str, received_at: datetime, beat: Heartbeat) -> None:
        """A valid heartbeat of a registered device arrived (must not block)."""

    def status_received(self, device_id: str, received_at: datetime, status: Status) -> None:
        """A valid status message of a registered device arrived (must not block)."""
