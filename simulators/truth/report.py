"""The ground-truth report: a run's JSON record of what it did and what a correct backend shows.

The schema is documented in docs/SIMULATOR.md. `timeline` per device is the raw record the
predictions come from (and what `--check` predicts from again); `expected` and `allowed` are
those predictions for a complete engine (every alert type of docs/ALERTS.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.truth.expect import Tolerance, iso
from telecare.simulators.truth.predict import Prediction, predict
from telecare.simulators.truth.thresholds import ALL_TYPES, Rules

FORMAT = "telecare-simulate-report/1"


def build_report(
    *,
    run: dict[str, Any],
    devices: dict[str, dict[str, Any]],
    rules: Rules | None,
    tolerance: Tolerance,
    quarantine: list[dict[str, Any]],
    spoofed: list[dict[str, Any]],
    others_by_district: dict[str, int],
) -> dict[str, Any]:
    """`run` holds the metadata (floats for times); `devices` id -> facts and `timeline`."""
    outages = [(float(a), float(b)) for a, b in run.get("service_outages", [])]
    report: dict[str, Any] = {
        "format": FORMAT,
        **{k: iso(v) if k.endswith("_at") else v for k, v in run.items()},
        "service_outages": [[iso(a), iso(b)] for a, b in outages],
        "thresholds": rules.to_json() if rules else None,
        "tolerance": asdict(tolerance),
        "others_by_district": others_by_district,
        "quarantine": [{**q, "at": iso(q["t"])} for q in quarantine],
        "spoofed": [{**s, "at": iso(s["t"])} for s in spoofed],
        "devices": devices,
        "areas": {},
    }
    if rules is None:  # --no-register: no backend to predict for
        return report
    full = predict(
        devices,
        rules,
        built=frozenset(ALL_TYPES),
        ended_at=run["ended_at"],
        tolerance=tolerance,
        others_by_district=others_by_district,
        started_at=run["started_at"],
        outages=outages,
    )
    _attach(report, full)
    return report


def _attach(report: dict[str, Any], prediction: Prediction) -> None:
    for device in report["devices"].values():
        device["expected"], device["allowed"], device["alarms"] = [], [], []
    for alert in prediction.alerts:
        if alert.device_id is not None:
            holder = report["devices"][alert.device_id]
        else:
            holder = report["areas"].setdefault(str(alert.area), {"expected": [], "allowed": []})
        holder["expected" if alert.certain else "allowed"].append(alert.to_json())
    for alarm in prediction.alarms:
        report["devices"][alarm.device_id]["alarms"].append(
            {
                "msg_id": alarm.msg_id,
                "event": alarm.event,
                "sent_at": iso(alarm.sent_at),
                "must_store": alarm.must_store,
            }
        )


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=1) + "\n")


def read_report(path: Path) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read report {path}: {exc}") from None
    if report.get("format") != FORMAT:
        raise ScenarioError(f"{path} is not a {FORMAT} report")
    if report.get("thresholds") is None:
        raise ScenarioError(
            f"{path} was written without a backend (--no-register): nothing to check"
        )
    return report
