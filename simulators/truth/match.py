"""Matching predicted alerts to the alerts the API shows, subject by subject and type by type.

An expected alert matches the first unmatched API alert of its subject and type raised inside
its window; then its resolution (window, `resolved_by`) and, with area outages built, its group
are compared. Allowed alerts absorb API alerts they match without being required. Whatever API
alert of a built type is left is a false alert.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from telecare.simulators.truth.expect import Expected, Tolerance

if TYPE_CHECKING:
    from telecare.simulators.truth.check import CheckResult
    from telecare.simulators.truth.predict import Prediction


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def _time(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


@dataclass(frozen=True)
class ApiAlert:
    id: int
    type: str
    device_id: str | None
    area: str | None
    raised_at: float
    resolved_at: float | None
    resolved_by: str | None
    group_id: int | None

    @property
    def subject(self) -> str:
        return self.device_id or self.area or "?"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiAlert:
        raised_at = _time(data["raised_at"])
        assert raised_at is not None
        return cls(
            id=int(data["id"]),
            type=str(data["type"]),
            device_id=data.get("device_id"),
            area=data.get("area"),
            raised_at=raised_at,
            resolved_at=_time(data.get("resolved_at")),
            resolved_by=data.get("resolved_by"),
            group_id=data.get("group_id"),
        )

    def describe(self) -> str:
        end = (
            f"resolved {stamp(self.resolved_at)} by {self.resolved_by}"
            if self.resolved_at is not None
            else "still open"
        )
        group = f", group #{self.group_id}" if self.group_id else ""
        return f"#{self.id} raised {stamp(self.raised_at)}, {end}{group}"


def describe(expected: Expected) -> str:
    lo, hi = expected.raised
    if expected.resolved is None:
        end = "open at the end of the run"
    else:
        end = (
            f"resolved {stamp(expected.resolved[0])}-{stamp(expected.resolved[1])}"
            f" by {expected.resolved_by}"
        )
    why = f" ({expected.why})" if expected.why else ""
    return f"raised {stamp(lo)}-{stamp(hi)}, {end}{why}"


def match_alerts(
    prediction: Prediction,
    shown: list[ApiAlert],
    built: frozenset[str],
    *,
    group_areas: dict[int, str],
    ended_at: float,
    tolerance: Tolerance,
    result: CheckResult,
) -> None:
    by_key: dict[tuple[str, str], list[ApiAlert]] = defaultdict(list)
    for alert in sorted(shown, key=lambda a: a.raised_at):
        by_key[(alert.subject, alert.type)].append(alert)
    expected: dict[tuple[str, str], list[Expected]] = defaultdict(list)
    for exp in sorted(prediction.alerts, key=lambda e: (not e.certain, e.raised[0])):
        expected[(exp.subject, exp.type)].append(exp)
    for key in sorted(set(by_key) | set(expected)):
        left = list(by_key.get(key, []))
        for exp in expected.get(key, []):
            found = next((a for a in left if exp.raised[0] <= a.raised_at <= exp.raised[1]), None)
            if found is None:
                if exp.certain:
                    result.misses.append(
                        f"{key[0]} {key[1]}: expected {describe(exp)}; API shows "
                        f"{_list(by_key.get(key, []))}"
                    )
                continue
            left.remove(found)
            if exp.certain:
                result.matched += 1
                problem = _compare(exp, found, built, group_areas, ended_at, tolerance)
                if problem:
                    result.misses.append(
                        f"{key[0]} {key[1]}: expected {describe(exp)}; API "
                        f"alert {found.describe()}: {problem}"
                    )
        if key[1] not in built:
            continue
        for alert in left:
            predicted = [describe(e) for e in expected.get(key, [])] or ["nothing"]
            result.false.append(
                f"{key[0]} {key[1]}: API alert {alert.describe()}; predicted {'; '.join(predicted)}"
            )


def _compare(
    exp: Expected,
    found: ApiAlert,
    built: frozenset[str],
    group_areas: dict[int, str],
    ended_at: float,
    tolerance: Tolerance,
) -> str | None:
    if exp.resolved is None:
        if found.resolved_at is not None and found.resolved_at < ended_at - tolerance.early_s:
            return "resolved although it should still be open"
    else:
        lo, hi = exp.resolved
        if found.resolved_at is None:
            if hi <= ended_at:
                return "still open, should be resolved"
        elif not lo <= found.resolved_at <= hi:
            return "resolved outside the expected window"
        elif exp.resolved_by and found.resolved_by != exp.resolved_by:
            return f"resolved by {found.resolved_by}, expected {exp.resolved_by}"
    if "area_outage" in built and exp.groups:
        area = group_areas.get(found.group_id) if found.group_id is not None else None
        if area not in exp.groups:
            return f"grouped under {area}, expected one of {exp.groups}"
    return None


def _list(alerts: list[ApiAlert]) -> str:
    return "; ".join(a.describe() for a in alerts) or "none"
