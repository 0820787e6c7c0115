"""Change events of alarms and alerts, as announced by the `record_event` trigger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

EVENTS_CHANNEL = "telecare_events"

EventKind = Literal["alarm", "alert"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    id: int
    kind: EventKind
    entity_id: int
    action: Literal["created", "updated"]
    device_id: str | None
    state: str
    type: str | None = None  # the alert's type or the alarm's event
    subject: str | None = None  # alerts only (docs/ALERTS.md)
    group_id: int | None = None  # alerts only: the area_outage it is grouped under
    at: datetime | None = None  # the alert's raised_at or the alarm's received_at


def parse_event(payload: str) -> ChangeEvent:
    """A NOTIFY payload of channel `telecare_events`; ValueError if it is not one."""
    try:
        data = json.loads(payload)
        return ChangeEvent(
            id=int(data["id"]),
            kind=data["kind"],
            entity_id=int(data["entity_id"]),
            action=data["action"],
            device_id=data["device_id"],
            state=data["state"],
            type=data.get("type"),
            subject=data.get("subject"),
            group_id=data.get("group_id"),
            at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a change event: {payload[:200]!r}") from exc
