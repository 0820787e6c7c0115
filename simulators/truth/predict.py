"""From a run's timeline to what a correct backend must show: expected and allowed alerts.

`predict()` is pure: the report writer calls it with every alert type (a complete engine), and
`--check` calls it again with the types the engine under test raises, because a missing rule
changes others (without `flapping` nothing suppresses connection_lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from telecare.simulators.truth.area_truth import DeviceFacts, predict_areas
from telecare.simulators.truth.device_truth import DeviceReplay, Predicted
from telecare.simulators.truth.expect import Expected, Tolerance
from telecare.simulators.truth.thresholds import MAINS_TYPES, SILENCE_TYPES, Rules


@dataclass(frozen=True)
class AlarmExpectation:
    device_id: str
    msg_id: str
    event: str
    sent_at: float
    must_store: bool  # False when sent too close to the end to be sure it arrived


@dataclass
class Prediction:
    alerts: list[Expected] = field(default_factory=list)
    alarms: list[AlarmExpectation] = field(default_factory=list)

    def certain(self) -> list[Expected]:
        return [e for e in self.alerts if e.certain]


def predict(
    timelines: dict[str, dict[str, Any]],
    rules: Rules,
    *,
    built: frozenset[str],
    ended_at: float,
    tolerance: Tolerance,
    others_by_district: dict[str, int] | None = None,
    started_at: float | None = None,
    outages: Sequence[tuple[float, float]] = (),
) -> Prediction:
    """`timelines` maps device id to `{"district": ..., "timeline": [events]}`.

    Alerts due before `started_at` (devices attached from an earlier run that were already
    overdue) belong to that earlier run and are left out. `outages` are the service's restarts
    (stopped, answering again): a message sent meanwhile waited at the broker, so the backend
    received it when the service came back, and judged what was due in between by what it had
    then received (docs/ALERTS.md, restarts).
    """
    facts = []
    prediction = Prediction()
    for device_id, entry in sorted(timelines.items()):
        events = sorted(
            (_as_received(e, outages) for e in entry["timeline"]), key=lambda e: float(e["t"])
        )
        replay = DeviceReplay(rules, built, race_s=tolerance.race_s)
        alerts = [a for a in replay.replay(events, ended_at + tolerance.race_s) if a.type in built]
        facts.append(DeviceFacts(device_id, entry.get("district"), events, alerts))
        prediction.alarms += [
            AlarmExpectation(
                device_id,
                a.msg_id,
                a.event,
                a.sent_at,
                must_store=a.ack is not None or a.sent_at < ended_at - 2 * tolerance.race_s,
            )
            for a in replay.alarms
        ]
    areas = []
    if "area_outage" in built:
        areas = predict_areas(
            facts, rules, others_by_district=others_by_district or {}, margin_s=tolerance.race_s
        )
    window = _Windows(tolerance, ended_at, started_at or 0.0, tuple(outages))
    for device in facts:
        for alert in device.alerts:
            groups: list[str | None] = []
            if "area_outage" in built and alert.type in SILENCE_TYPES + MAINS_TYPES:
                groups = sorted(device.groups.get(id(alert), {None}), key=str)
            window.add(prediction, alert, device_id=device.device_id, groups=groups)
    for area in areas:
        window.add(prediction, area.alert, area=area.area)
    return prediction


# Messages a device sends; the broker holds them for the ingest's session while it is down.
_HELD_BY_BROKER = frozenset({"hb", "online", "offline", "alarm"})


def _as_received(event: dict[str, Any], outages: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """The event at the time the backend could first see it."""
    if event["k"] in _HELD_BY_BROKER:
        t = float(event["t"])
        for stopped, back in outages:
            if stopped <= t < back:
                return {**event, "t": back, "sent": t}
    return event


@dataclass(frozen=True)
class _Windows:
    tolerance: Tolerance
    ended_at: float
    started_at: float
    outages: tuple[tuple[float, float], ...] = ()

    def _around_restart(self, at: float) -> tuple[float, float] | None:
        """The latest restart that began before `at` and whose blur still covers it."""
        around = None
        for stopped, back in self.outages:
            if stopped - self.tolerance.early_s <= at <= back + self.tolerance.restart_s:
                around = (stopped, back)
        return around

    def _window(self, at: float, *, deadline: bool) -> tuple[float, float]:
        low, high = self.tolerance.window(at, deadline=deadline)
        outage = self._around_restart(at)
        if outage is None:
            return low, high
        stopped, back = outage
        return low - (back - stopped), max(high, back + self.tolerance.restart_s)

    def add(
        self,
        prediction: Prediction,
        alert: Predicted,
        *,
        device_id: str | None = None,
        area: str | None = None,
        groups: list[str | None] | None = None,
    ) -> None:
        """Turn a nominal prediction into windows; what the end of the run cuts is only allowed."""
        raised = self._window(alert.raised_at, deadline=alert.timer)
        if raised[0] > self.ended_at or raised[1] < self.started_at:
            return
        resolved = None
        certain = alert.certain
        if alert.resolved_at is not None:
            window = self._window(alert.resolved_at, deadline=alert.resolve_timer)
            resolved = window if window[0] <= self.ended_at else None
            # Due while the service was down and over by the time it had caught up: a backend
            # that judged after catching up rightly never raised it; one that did is not wrong.
            outage = self._around_restart(alert.raised_at)
            if outage is not None and alert.resolved_at <= outage[1] + self.tolerance.race_s:
                certain = False
        prediction.alerts.append(
            Expected(
                type=alert.type,
                raised=raised,
                device_id=device_id,
                area=area,
                resolved=resolved,
                resolved_by=alert.resolved_by if resolved is not None else None,
                certain=certain and raised[1] <= self.ended_at,
                why=alert.why,
                groups=groups or [],
                details=alert.details,
            )
        )
