"""docs/ALERTS.md for one device, replayed over what the simulator recorded it doing.

`DeviceReplay` walks the device's timeline in time order with the engine's timers (overdue
deadline, end of flapping, alarm ack target) and writes down every alert a correct engine
raises and resolves. `built` names the alert types the engine under test raises: a rule whose
type is not built does not act (no flapping suppression without `flapping`), so the prediction
is what *that* engine must show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telecare.simulators.truth.thresholds import (
    MIGRATING_STAGES,
    TECHNICAL,
    Rules,
    silence_window_s,
)

Event = dict[str, Any]


@dataclass
class Predicted:
    """An alert as replayed: nominal times; `timer` marks deadline-driven changes."""

    type: str
    raised_at: float
    timer: bool
    certain: bool = True
    why: str = ""
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolve_timer: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def resolve(self, at: float, by: str, *, timer: bool = False) -> None:
        self.resolved_at, self.resolved_by, self.resolve_timer = at, by, timer


@dataclass(frozen=True)
class AlarmSent:
    msg_id: str
    event: str
    sent_at: float
    ack: str | None


class DeviceReplay:
    def __init__(self, rules: Rules, built: frozenset[str], *, race_s: float) -> None:
        self.rules = rules
        self.built = built
        self.race_s = race_s
        self.alerts: list[Predicted] = []
        self.alarms: list[AlarmSent] = []
        self._open: dict[str, Predicted] = {}
        self._window: float | None = None
        self._anchor = 0.0
        self._stage = "analogue"
        self._offline = False
        self._overdue = False
        self._last_power: str | None = None
        self._drops: list[float] = []
        self._flap_until: float | None = None
        self._alarm_due: list[tuple[float, str]] = []
        self._unhandled: dict[str, Predicted] = {}
        self._beats: list[float] = []

    # --- the replay ---

    def replay(self, events: list[Event], until: float) -> list[Predicted]:
        self._beats = [float(e["t"]) for e in events if e["k"] == "hb"]
        acks = {e["msg_id"]: e["result"] for e in events if e["k"] == "ack"}
        for event in events:
            at = float(event["t"])
            self._advance(at)
            kind = event["k"]
            if kind in ("registered", "stage"):
                self._stage_changed(at, event)
            elif kind == "hb":
                self._heartbeat(at, event)
            elif kind == "online" and self._offline:
                self._offline = False
                self._close("connection_lost", at, "device")
            elif kind == "offline" and not self._offline:
                self._offline = True
                self._went_down(at, "connection_lost", f"status offline ({event.get('reason')})")
            elif kind == "alarm":
                self._alarm(at, event, acks.get(event["msg_id"]))
            elif kind == "operator_ack":
                self._taken(at, event["msg_id"])
        self._advance(until)
        return self.alerts

    def _advance(self, now: float) -> None:
        """Fire every engine timer due up to `now`, earliest first."""
        while True:
            timers: list[tuple[float, str]] = []
            if self._window is not None and not self._overdue:
                timers.append((self._anchor + self._window, "deadline"))
            if self._flap_until is not None:
                timers.append((self._flap_until, "flap_end"))
            timers += [(due, "alarm") for due, _ in self._alarm_due[:1]]
            due = [t for t in timers if t[0] <= now]
            if not due:
                return
            at, what = min(due)
            if what == "deadline":
                self._deadline(at)
            elif what == "flap_end":
                self._flap_end(at)
            else:
                _, msg_id = self._alarm_due.pop(0)
                self._unhandled[msg_id] = self._raise(
                    "alarm_unhandled",
                    at,
                    timer=True,
                    why=f"alarm {msg_id} not taken",
                    details={"msg_id": msg_id},
                    keyed=False,
                )

    # --- liveness ---

    def _overdue_type(self) -> str:
        return "migration_dropout" if self._stage in MIGRATING_STAGES else "heartbeat_missed"

    def _stage_changed(self, at: float, event: Event) -> None:
        if event["k"] == "registered":
            self._window = silence_window_s(int(event["interval"]), event.get("grace"))
            # A device from an earlier run: its last heartbeat and supply carry over.
            self._anchor = max(self._anchor, float(event.get("last_hb") or 0))
            self._last_power = event.get("power")
        before = self._overdue_type()
        self._stage = str(event["stage"])
        self._anchor = max(self._anchor, at)
        if self._overdue and self._overdue_type() != before:
            self._overdue = False  # the other type is raised at the new deadline (superseding)

    def _deadline(self, at: float) -> None:
        self._overdue = True
        kind = self._overdue_type()
        other = "heartbeat_missed" if kind == "migration_dropout" else "migration_dropout"
        next_beat = next((b for b in self._beats if b > self._anchor), None)
        racing = next_beat is not None and next_beat - at < self.race_s
        why = f"no heartbeat for {self._window:g} s (interval + grace)"
        if other in self._open:
            self._close(other, at, "superseded", timer=True)
            self._raise(kind, at, timer=True, why=why + " after a stage change")
            return
        self._went_down(at, kind, why, certain=not racing)

    def _heartbeat(self, at: float, event: Event) -> None:
        if self._window is not None and not self._overdue:
            deadline = self._anchor + self._window
            if 0 < deadline - at < self.race_s:  # the engine may have seen the deadline first
                near = Predicted(
                    self._overdue_type(),
                    deadline,
                    True,
                    certain=False,
                    why="heartbeat and deadline within the tolerance",
                )
                near.resolve(at, "device")
                self.alerts.append(near)
        # Any open overdue alert ends, even one left open by a stage change while overdue.
        self._overdue = False
        for kind in ("heartbeat_missed", "migration_dropout"):
            self._close(kind, at, "device")
        if self._offline:
            self._offline = False
            self._close("connection_lost", at, "device")
        self._anchor = max(self._anchor, at)
        self._power(at, str(event["power"]), event.get("battery"))
        if event.get("periph"):
            self._peripherals(at, event["periph"])

    def _went_down(self, at: float, kind: str, why: str, *, certain: bool = True) -> None:
        """A connection_lost or overdue raise: counted as a drop when the device was up."""
        timer = kind != "connection_lost"
        # The flag for this kind is already set: the device was up if the other one was not.
        was_up = not (self._overdue if kind == "connection_lost" else self._offline)
        if was_up:
            self._drops = [d for d in self._drops if d > at - self.rules.flapping_window_s]
            self._drops.append(at)
        if self._flap_until is not None:
            if was_up:
                self._flap_until = at + self.rules.flapping_window_s
                self._open["flapping"].details["drops"] = len(self._drops)
            return
        if was_up and "flapping" in self.built and len(self._drops) >= self.rules.flapping_drops:
            self._raise(
                "flapping",
                at,
                timer=timer,
                why=f"{len(self._drops)} drops",
                details={"drops": len(self._drops)},
            )
            self._flap_until = at + self.rules.flapping_window_s
            certain = False  # does the drop that opens flapping raise its own alert? (report)
            why += "; the drop that opened flapping"
        self._raise(kind, at, timer=timer, why=why, certain=certain)

    def _flap_end(self, at: float) -> None:
        self._flap_until = None
        self._close("flapping", at, "system", timer=True)
        if self._offline:
            self._raise("connection_lost", at, timer=True, why="still offline when flapping ended")
        if self._overdue:
            self._raise(
                self._overdue_type(), at, timer=True, why="still silent when flapping ended"
            )

    # --- what heartbeats report ---

    def _power(self, at: float, power: str, battery: int | None) -> None:
        if power == "battery" and self._last_power != "battery":
            self._raise("mains_power_lost", at, why="heartbeat says power: battery")
        elif power == "mains":
            self._close("mains_power_lost", at, "device")
        self._last_power = power
        if battery is not None:
            if battery < self.rules.battery_low_pct:
                self._raise("battery_low", at, why=f"battery {battery}%")
            elif battery >= self.rules.battery_ok_pct:
                self._close("battery_low", at, "device")

    def _peripherals(self, at: float, periph: list[list[Any]]) -> None:
        lost = [p[0] for p in periph if p[2] > self.rules.peripheral_supervision_s]
        if lost:
            self._raise("peripheral_lost", at, why=f"not heard: {', '.join(lost)}")
        else:
            self._close("peripheral_lost", at, "device")
        batteries = [p[1] for p in periph if p[1] is not None]
        if any(b < self.rules.battery_low_pct for b in batteries):
            self._raise("peripheral_battery_low", at, why=f"peripheral batteries {batteries}")
        elif all(b >= self.rules.battery_ok_pct for b in batteries):
            self._close("peripheral_battery_low", at, "device")

    def _alarm(self, at: float, event: Event, ack: str | None) -> None:
        self.alarms.append(AlarmSent(event["msg_id"], event["event"], at, ack))
        if event["event"] not in TECHNICAL:
            self._alarm_due.append((at + self.rules.alarm_ack_target_s, event["msg_id"]))
            self._alarm_due.sort()

    def _taken(self, at: float, msg_id: str) -> None:
        """An operator acknowledged the alarm: before the target nothing is raised."""
        self._alarm_due = [(due, m) for due, m in self._alarm_due if m != msg_id]
        alert = self._unhandled.pop(msg_id, None)
        if alert is not None:
            alert.resolve(at, "system")

    # --- bookkeeping ---

    def _raise(
        self,
        kind: str,
        at: float,
        *,
        timer: bool = False,
        why: str = "",
        certain: bool = True,
        details: dict[str, Any] | None = None,
        keyed: bool = True,
    ) -> Predicted:
        if keyed and kind in self._open:
            return self._open[kind]  # one open alert per subject: nothing new is raised
        alert = Predicted(kind, at, timer, certain, why, details=details or {})
        self.alerts.append(alert)
        if keyed:
            self._open[kind] = alert
        return alert

    def _close(self, kind: str, at: float, by: str, *, timer: bool = False) -> None:
        alert = self._open.pop(kind, None)
        if alert is not None:
            alert.resolve(at, by, timer=timer)
