"""What a correct backend must show: expected alerts with time windows, and the tolerances.

Times are Unix seconds. A prediction is made at a nominal time (the moment the simulator sent
the message, or the deadline it computed); the window around it comes from `Tolerance`:

- `early_s` (0.3): the backend shares this machine's clock and receives after the send, so only
  rounding and the API's own timestamps can make it earlier.
- `transport_s` (1.0): broker and ingest latency on a loaded 2-core machine.
- `flush_s` (0.2): the ingest's heartbeat batch flush (TELECARE_HEARTBEAT_FLUSH_MS).
- `detect_s` (1.0): the engine raises an overdue alert within one second of the deadline.
- `restart_s` (30.0): around a restart of the service (`restart` events) timing is checked
  loosely: what was due while it was down, or within `restart_s` after it answered /healthz
  again, may come as early as the outage began allows and as late as `restart_s` after it
  ended. Whether an alert is raised is still checked.

A message-driven change is due in [t - early, t + transport + flush]; a deadline-driven one in
[d - early, d + transport + flush + detect]. When a heartbeat and a deadline are closer than
that, either outcome is right: the alert is `allowed`, not expected. Heartbeat jitter needs no
allowance of its own: the simulator records each real send time and predicts from those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Tolerance:
    early_s: float = 0.3
    transport_s: float = 1.0
    flush_s: float = 0.2
    detect_s: float = 1.0
    restart_s: float = 30.0

    @property
    def message_late_s(self) -> float:
        return self.transport_s + self.flush_s

    @property
    def deadline_late_s(self) -> float:
        return self.transport_s + self.flush_s + self.detect_s

    @property
    def race_s(self) -> float:
        """How close a heartbeat and a deadline may be before either outcome is right."""
        return self.early_s + self.deadline_late_s

    def window(self, at: float, *, deadline: bool) -> tuple[float, float]:
        late = self.deadline_late_s if deadline else self.message_late_s
        return (at - self.early_s, at + late)


@dataclass
class Expected:
    """One alert a correct backend raises (`certain`) or may raise (`certain=False`: allowed).

    `resolved` is the window its resolution falls in, or None when it is still open at the end
    of the run; `resolved_by` is `device`, `system` or `superseded`. `groups` lists the areas
    whose `area_outage` the alert may be grouped under at the end (`None` in the list: not
    grouped); an empty list means "not checked".
    """

    type: str
    raised: tuple[float, float]
    device_id: str | None = None
    area: str | None = None
    resolved: tuple[float, float] | None = None
    resolved_by: str | None = None
    certain: bool = True
    why: str = ""
    groups: list[str | None] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.device_id or self.area or "?"

    def to_json(self) -> dict[str, Any]:
        """For the report: times as RFC 3339 strings, empty fields left out."""
        data = {k: v for k, v in asdict(self).items() if v not in (None, [], {}, "")}
        data["raised"] = [iso(t) for t in self.raised]
        if self.resolved is not None:
            data["resolved"] = [iso(t) for t in self.resolved]
        else:
            data["resolved"] = None  # still open at the end of the run
        data.pop("certain", None)
        return data


def iso(at: float) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
