"""`telecare simulate --check REPORT`: the report's ground truth against what the API shows.

Alerts, alarms and quarantine entries since the run started are fetched page by page and matched
to the predictions (see match.py). Every miss, false alert and wrong detail is printed with its
times; an expected alert whose type the engine does not raise yet is printed as "expected to
miss (not built yet)" and fails nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telecare.simulators.api_client import Api
from telecare.simulators.truth.expect import Tolerance
from telecare.simulators.truth.match import ApiAlert, match_alerts, stamp
from telecare.simulators.truth.predict import predict
from telecare.simulators.truth.thresholds import ALL_TYPES, Rules


@dataclass
class CheckResult:
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    expected_to_miss: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not (self.misses or self.false)

    def lines(self) -> list[str]:
        return (
            [f"MISS    {m}" for m in self.misses]
            + [f"FALSE   {f}" for f in self.false]
            + [f"TO-MISS {e}" for e in self.expected_to_miss]
            + [f"note    {n}" for n in self.notes]
        )


def _since(started: float) -> datetime:
    return datetime.fromtimestamp(started - 1, UTC)


def _time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def check_report(
    report: dict[str, Any], api: Api, *, out: Callable[[str], None] = print
) -> CheckResult:
    result = CheckResult()
    rules_now = await api.alert_rules()
    raised = frozenset(rules_now.get("raised_types", [])) & frozenset(ALL_TYPES)
    rules = Rules.from_json(report["thresholds"])
    if Rules.from_json(rules_now) != rules:
        result.notes.append(
            f"the backend's thresholds are now {Rules.from_json(rules_now).to_json()}; the run "
            f"used {rules.to_json()}: predicting with the run's"
        )
    started, ended = _time(report["started_at"]), _time(report["ended_at"])
    tolerance = Tolerance(**report["tolerance"])
    devices: dict[str, dict[str, Any]] = report["devices"]
    common = {
        "ended_at": ended,
        "tolerance": tolerance,
        "others_by_district": report.get("others_by_district", {}),
        "started_at": started,
        "outages": [(_time(a), _time(b)) for a, b in report.get("service_outages", [])],
    }
    checked = predict(devices, rules, built=raised, **common)
    full = predict(devices, rules, built=frozenset(ALL_TYPES), **common)
    for alert in full.certain():
        if alert.type not in raised:
            result.expected_to_miss.append(
                f"{alert.subject} {alert.type} raised {stamp(alert.raised[0])}-"
                f"{stamp(alert.raised[1])}: not built yet (the engine does not raise it)"
            )
    result.misses += [f"run error (the backend refused a step): {e}" for e in report["errors"]]
    areas = _areas(devices)
    fetched = [
        ApiAlert.from_json(a)
        async for a in api.pages("/alerts", since=_since(started))
        if a.get("device_id") in devices or a.get("area") in areas
    ]
    group_areas = {a.id: a.area for a in fetched if a.area is not None}
    judged = [a for a in fetched if a.raised_at <= ended]
    if len(judged) < len(fetched):
        result.notes.append(
            f"{len(fetched) - len(judged)} alert(s) raised after the run ended: not judged"
        )
    match_alerts(
        checked,
        judged,
        raised,
        group_areas=group_areas,
        ended_at=ended,
        tolerance=tolerance,
        result=result,
    )
    await _check_alarms(report, api, checked.alarms, started, result)
    await _check_quarantine(report, api, started, tolerance, result)
    _check_intruders(report, result)
    for line in result.lines():
        out(line)
    out(
        f"{report['scenario']}: {len(checked.certain())} alerts expected for the built types "
        f"({', '.join(sorted(raised))}), {result.matched} matched; "
        f"{len(result.misses)} misses, {len(result.false)} false; "
        f"{len(result.expected_to_miss)} expected to miss (not built yet)"
    )
    return result


def _areas(devices: dict[str, dict[str, Any]]) -> set[str]:
    areas = set()
    for device in devices.values():
        if device.get("district"):
            areas.add(f"postcode:{device['district']}")
        areas |= {f"network:{e['network']}" for e in device["timeline"] if e["k"] == "hb"}
    return areas


async def _check_alarms(
    report: dict[str, Any], api: Api, expected: list[Any], started: float, result: CheckResult
) -> None:
    since = _since(started)
    stored: dict[tuple[str, str], list[dict[str, Any]]] = {}
    async for alarm in api.pages("/alarms", since=since):
        if alarm["device_id"] in report["devices"]:
            stored.setdefault((alarm["device_id"], alarm["msg_id"]), []).append(alarm)
    for alarm in expected:
        rows = stored.pop((alarm.device_id, alarm.msg_id), [])
        what = f"{alarm.device_id} alarm {alarm.msg_id} ({alarm.event}) sent {stamp(alarm.sent_at)}"
        if len(rows) > 1:
            result.false.append(f"{what}: stored {len(rows)} times (must be exactly once)")
        elif not rows and alarm.must_store:
            result.misses.append(f"{what}: not stored")
        elif rows and rows[0]["event"] != alarm.event:
            result.false.append(f"{what}: stored as event {rows[0]['event']}")
        else:
            result.matched += 1
    open_broker = report["broker"]["mode"] == "open"
    for spoof in report.get("spoofed", []):
        rows = stored.pop((spoof["device_id"], spoof["msg_id"]), [])
        what = (
            f"{spoof['device_id']} spoofed alarm {spoof['msg_id']} sent by {spoof['sender']}"
            f" at {spoof['at']}"
        )
        if rows and open_broker:
            result.expected_to_miss.append(
                f"{what}: stored under the victim; a development broker without per-device "
                "credentials lets any client publish under any id (the backend cannot tell)"
            )
        elif rows:
            result.false.append(f"{what}: stored, although the broker enforces credentials")
        elif not open_broker:
            result.matched += 1  # dropped by the broker, as it must be
    for (device_id, msg_id), rows in stored.items():
        result.false.append(
            f"{device_id} alarm {msg_id} ({rows[0]['event']}) stored at "
            f"{rows[0]['received_at']}: the simulator never sent it"
        )


def _check_intruders(report: dict[str, Any], result: CheckResult) -> None:
    """An unregistered client let in by a broker that enforces credentials is a failure."""
    if report["broker"]["mode"] == "open":
        return
    for intruder in report.get("intruders", []):
        if intruder["accepted"]:
            result.false.append(
                f"unregistered client {intruder['client_id']} ({intruder['credential']}) was "
                f"let in at {intruder['at']}, although the broker enforces credentials"
            )
        else:
            result.matched += 1


async def _check_quarantine(
    report: dict[str, Any], api: Api, started: float, tolerance: Tolerance, result: CheckResult
) -> None:
    wanted = list(report.get("quarantine", []))
    topics = {q["topic"] for q in wanted}
    entries = [
        q
        async for q in api.pages("/quarantine", since=_since(started))
        if q["topic"] in topics or q.get("device_id") in report["devices"]
    ]
    for expected in wanted:
        lo, hi = expected["t"] - tolerance.early_s, expected["t"] + tolerance.message_late_s + 2
        found = next(
            (
                q
                for q in entries
                if q["topic"] == expected["topic"]
                and q["reason"] == expected["reason"]
                and lo <= _time(q["received_at"]) <= hi
            ),
            None,
        )
        what = f"quarantine {expected['reason']} for {expected['topic']} at {expected['at']}"
        if found is not None:
            entries.remove(found)
            result.matched += 1
        elif expected["required"]:
            result.misses.append(f"{what}: not in GET /quarantine")
        else:
            result.notes.append(f"{what}: absent (the broker may refuse it)")
    for entry in entries:
        result.false.append(
            f"quarantine #{entry['id']} {entry['reason']} for {entry['topic']} at "
            f"{entry['received_at']}: the simulator sent nothing there it expected refused "
            f"({entry.get('detail')})"
        )
