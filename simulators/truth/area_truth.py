"""docs/ALERTS.md "Mass outages": area_outage alerts and grouping, from the device predictions.

An area is a postcode district (`postcode:SW1A`) or a network bearer (`network:4g`, from each
device's latest heartbeat). For each area and cause (`silence`, `mains`) the member alerts are
walked in time order: the area alert is raised at the first moment `threshold` devices have an
open member alert raised within `area_window_s`, and resolved once fewer than `threshold` of its
members are still in the condition. Member alerts learn which area they end up grouped under.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from telecare.simulators.truth.device_truth import Event, Predicted
from telecare.simulators.truth.thresholds import MAINS_TYPES, SILENCE_TYPES, Rules

CAUSES = {"silence": SILENCE_TYPES, "mains": MAINS_TYPES}


@dataclass
class DeviceFacts:
    device_id: str
    district: str | None
    events: list[Event]
    alerts: list[Predicted]
    groups: dict[int, set[str | None]] = field(default_factory=dict)  # id(alert) -> areas

    def network_at(self, at: float) -> str | None:
        network = None
        for event in self.events:
            if event["t"] > at:
                break
            if event["k"] == "hb":
                network = event["network"]
        return network


@dataclass
class AreaAlert:
    area: str
    cause: str
    alert: Predicted
    members: set[str]
    threshold: int


def predict_areas(
    devices: list[DeviceFacts],
    rules: Rules,
    *,
    others_by_district: dict[str, int],
    margin_s: float,
) -> list[AreaAlert]:
    areas: dict[str, list[DeviceFacts]] = defaultdict(list)
    for device in devices:
        if device.district:
            areas[f"postcode:{device.district}"].append(device)
        for network in {e["network"] for e in device.events if e["k"] == "hb"}:
            areas[f"network:{network}"].append(device)
    found = []
    for area, members in sorted(areas.items()):
        extra = others_by_district.get(area.removeprefix("postcode:"), 0)
        for cause, types in CAUSES.items():
            found += _walk(area, cause, types, members, rules, extra, margin_s)
    return found


def _in_area(area: str, device: DeviceFacts, at: float) -> bool:
    if area.startswith("postcode:"):
        return True
    return device.network_at(at) == area.removeprefix("network:")


def _walk(
    area: str,
    cause: str,
    types: tuple[str, ...],
    devices: list[DeviceFacts],
    rules: Rules,
    extra_tracked: int,
    margin_s: float,
) -> list[AreaAlert]:
    alerts = [(d, a) for d in devices for a in d.alerts if a.type in types]
    moments = sorted(
        {a.raised_at for _, a in alerts}
        | {a.resolved_at for _, a in alerts if a.resolved_at is not None}
    )
    found: list[AreaAlert] = []
    current: AreaAlert | None = None
    for at in moments:
        live = [(d, a) for d, a in alerts if _open_at(a, at) and _in_area(area, d, at)]
        if current is None:
            recent = [(d, a) for d, a in live if a.raised_at >= at - rules.area_window_s]
            tracked = extra_tracked + sum(1 for d in devices if _in_area(area, d, at))
            threshold = max(rules.area_min_devices, math.ceil(rules.area_min_share * tracked))
            certain = {d.device_id for d, a in recent if a.certain}
            possible = {d.device_id for d, _ in recent}
            if len(possible) >= threshold:
                trigger = min((a for _, a in recent if a.raised_at == at), key=lambda a: a.timer)
                alert = Predicted(
                    "area_outage",
                    at,
                    trigger.timer,
                    len(certain) >= threshold,
                    why=f"{len(possible)} of {tracked} devices ({cause})",
                    details={"cause": cause, "threshold": threshold},
                )
                current = AreaAlert(area, cause, alert, set(), threshold)
                found.append(current)
        if current is not None:
            current.members |= {d.device_id for d, _ in live}
            still = {d.device_id for d, a in live if d.device_id in current.members}
            if len(still) < current.threshold:
                current.alert.resolve(at, "system", timer=True)
                current = None
    for area_alert in found:
        _mark_groups(area_alert, alerts, margin_s)
    return found


def _open_at(alert: Predicted, at: float) -> bool:
    return alert.raised_at <= at and (alert.resolved_at is None or alert.resolved_at > at)


def _mark_groups(
    area: AreaAlert, alerts: list[tuple[DeviceFacts, Predicted]], margin_s: float
) -> None:
    """Grouped: open while the area alert is; ungrouped again if still open when it resolves.

    Within `margin_s` of the area alert's raise or resolution either outcome is right.
    """
    start = area.alert.raised_at
    end = area.alert.resolved_at if area.alert.resolved_at is not None else math.inf
    for device, alert in alerts:
        if device.device_id not in area.members:
            continue
        resolved = alert.resolved_at if alert.resolved_at is not None else math.inf
        if alert.raised_at > end + margin_s or resolved < start - margin_s:
            continue  # never open while the area alert was
        outcomes = device.groups.setdefault(id(alert), set())
        outcomes.add(None if resolved > end else area.area)
        near_end = abs(resolved - end) < margin_s or abs(alert.raised_at - end) < margin_s
        near_start = abs(resolved - start) < margin_s
        if near_end or near_start or not area.alert.certain:
            outcomes |= {None, area.area}
