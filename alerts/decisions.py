"""What the engine decides, in order, for the store to write: raise, resolve, update, group.

An alert is named by its subject (docs/ALERTS.md): at most one unresolved alert per subject, so
every action is idempotent and a takeover or a restart can repeat one without harm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telecare.alerts.types import AlertType


def device_subject(alert_type: AlertType, device_id: str) -> str:
    return f"{alert_type.value}:{device_id}"


def alarm_subject(alarm_id: int) -> str:
    return f"{AlertType.ALARM_UNHANDLED.value}:{alarm_id}"


def area_subject(area: str, cause: str) -> str:
    return f"{AlertType.AREA_OUTAGE.value}:{area}:{cause}"


@dataclass(frozen=True, slots=True)
class Raise:
    subject: str
    type: AlertType
    at: datetime
    device_id: str | None = None
    area: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolve:
    subject: str
    at: datetime
    by: str  # device, system, superseded or decommissioned


@dataclass(frozen=True, slots=True)
class ResolveDevice:
    """Resolve every unresolved alert of a device (it was decommissioned)."""

    device_id: str
    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class Update:
    """New details of an open alert (merged into the old ones); recorded in its history."""

    subject: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Group:
    """Put the open alerts `members` under the open area alert `area_subject`."""

    area_subject: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ungroup:
    """Take every still-open member out of the area alert `area_subject` (it is resolving)."""

    area_subject: str


Action = Raise | Resolve | ResolveDevice | Update | Group | Ungroup
Emit = Callable[[Action], None]
