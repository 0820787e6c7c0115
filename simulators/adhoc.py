"""The fleet `telecare simulate` runs without a scenario file (the demo's): steady, some hang."""

from __future__ import annotations

from typing import Any

from telecare.simulators.scenario import Scenario, parse_scenario
from telecare.simulators.scenario_errors import ScenarioError

FOREVER_S = 10 * 365 * 24 * 3600.0


def adhoc_scenario(
    *,
    devices: int,
    interval_s: int,
    silent: int,
    silent_after_s: float,
    alarm_every_s: float | None,
    duration_s: float | None,
) -> Scenario:
    """`devices` hubs heartbeating every `interval_s`; the last `silent` hang after a while."""
    if not 0 <= silent <= devices:
        raise ScenarioError("--silent must be between 0 and --devices")
    group: dict[str, Any] = {
        "name": "homes",
        "devices": devices,
        "heartbeat_interval_s": interval_s,
        "postcode": ["SW1A 1AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "LS1 4AP"],
        "network": ["4g", "wifi", "ethernet"],
        "alarm_events": ["pendant", "pull_cord", "fall", "test"],
        "peripherals": [
            {"kind": "pendant", "battery_pct": 90},
            {"kind": "smoke", "battery_pct": 85},
        ],
    }
    if alarm_every_s is not None:
        group["alarm_every_s"] = alarm_every_s
    data: dict[str, Any] = {
        "name": "adhoc",
        "description": "ad-hoc steady fleet",
        "duration_s": duration_s or FOREVER_S,
        "groups": [group],
    }
    if silent:
        data["events"] = [
            {
                "at_s": silent_after_s,
                "group": "homes",
                "do": "drop",
                "mode": "hang",
                "count": silent,
                "pick": "last",
            }
        ]
    return parse_scenario(data, time_scale=1.0, origin="ad-hoc fleet")
