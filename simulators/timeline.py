"""What the fleet did, as it did it: the raw material of the ground truth.

Every event is a small JSON-ready dict with `t` (Unix seconds, this machine's clock, which the
backend on the same machine shares) and `k` (its kind). Times are taken just before the bytes
are handed to the socket, so the backend's receive time is never earlier.

| k | fields | written when |
| --- | --- | --- |
| `registered` | interval, grace, stage, district | from the API's answer (`stage_changed_at`) |
| `stage` | stage | a migration-stage change, from the API's answer |
| `hb` | power, battery, network, periph: [[id, battery, last_seen_s], ...] | a heartbeat |
| `online` | | the retained `online` status |
| `offline` | reason: `lwt` (socket aborted) or `shutdown` | the device went offline |
| `hang` | | heartbeats stopped, connection kept |
| `alarm` | msg_id, event | an alarm's first send |
| `ack` | msg_id, result | the backend's ack for it arrived |

`quarantine` holds the messages the backend must (or may) refuse, `spoofed` the alarms a device
published under another's id (`dropped`: the broker enforces per-device credentials and must
drop it, so one stored is a failure; otherwise the backend cannot tell and stores it), and
`intruders` the unregistered clients that tried the broker (`accepted`: it let them in).

`outages` holds the service's restarts: from the moment it was told to stop to the moment it
answered /healthz again. Messages sent in between waited at the broker.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass
class Timeline:
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    spoofed: list[dict[str, Any]] = field(default_factory=list)
    intruders: list[dict[str, Any]] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    recording: bool = True  # off for runs without a report (--no-register): memory stays flat

    def add(self, device_id: str, kind: str, at: float | None = None, **fields: Any) -> None:
        if not self.recording:
            return
        self.events[device_id].append({"t": time.time() if at is None else at, "k": kind, **fields})

    def expect_quarantine(self, topic: str, reason: str, *, required: bool, why: str) -> None:
        """A message the backend must refuse (or, `required=False`, may never see)."""
        self.quarantine.append(
            {"t": time.time(), "topic": topic, "reason": reason, "required": required, "why": why}
        )

    def record_spoof(
        self, posing_as: str, sender: str, msg_id: str, kind: str, *, dropped: bool
    ) -> None:
        self.spoofed.append(
            {
                "t": time.time(),
                "device_id": posing_as,
                "sender": sender,
                "msg_id": msg_id,
                "kind": kind,
                "dropped": dropped,
            }
        )

    def record_intruder(
        self, client_id: str, credential: str, *, accepted: bool, error: str | None = None
    ) -> None:
        """An unregistered client's CONNECT: `credential` is what it offered."""
        self.intruders.append(
            {
                "t": time.time(),
                "client_id": client_id,
                "credential": credential,
                "accepted": accepted,
                "error": error,
            }
        )

    def of(self, device_id: str) -> list[Event]:
        return sorted(self.events.get(device_id, []), key=lambda e: float(e["t"]))
