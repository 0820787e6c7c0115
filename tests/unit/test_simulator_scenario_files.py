"""Scenario files: every bundled one loads; time scaling and bad files get clear answers."""

from __future__ import annotations

from typing import Any

import pytest

from telecare.simulators.scenario import available_scenarios, load_scenario, parse_scenario
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.scenario_events import Do


def _data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "duration_s": 600,
        "backend": {"alarm_ack_target_s": 60, "flapping_drops": 3},
        "groups": [
            {"name": "g", "devices": 4, "heartbeat_interval_s": 60, "heartbeat_grace_s": 30}
        ],
        "events": [
            {"at_s": 120, "group": "g", "do": "drop", "mode": "network", "for_s": 60, "share": 0.5}
        ],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("name", available_scenarios())
def test_every_bundled_scenario_loads_at_the_test_time_scale(name: str) -> None:
    scenario = load_scenario(name, time_scale=6)
    assert scenario.devices > 0 and scenario.duration_s > 0


def test_time_scale_divides_every_duration_and_leaves_counts_alone() -> None:
    scenario = parse_scenario(_data(), time_scale=6)
    group = scenario.groups[0]
    assert (group.heartbeat_interval_s, group.heartbeat_grace_s) == (10, 5)
    assert scenario.duration_s == 100
    assert [(a.do, a.at_s, list(a.select(4))) for a in scenario.actions] == [
        (Do.DROP, 20, [0, 1]),
        (Do.RESTORE, 30, [0, 1]),
    ]
    assert scenario.backend_settings() == {"alarm_ack_target_s": 10, "flapping_drops": 3}


def test_a_scale_that_breaks_the_protocol_minimum_interval_is_refused() -> None:
    with pytest.raises(
        ScenarioError,
        match=r"under the minimum of docs/PROTOCOL\.md \(10 s\); use a time scale of at most 6",
    ):
        parse_scenario(_data(), time_scale=8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"events": [{"at_s": 1, "group": "nope", "do": "drop"}]}, "group must be one of"),
        ({"events": [{"at_s": 1, "group": "g", "do": "explode"}]}, "do must be one of"),
        ({"events": [{"at_s": 9999, "group": "g", "do": "drop"}]}, "after duration_s"),
        ({"events": [{"at_s": 1, "group": "g", "do": "drop", "mode": "x"}]}, "mode must be"),
        ({"groups": [{"name": "g", "devices": 1, "network": "carrier-pigeon"}]}, "unknown network"),
        ({"groups": []}, "at least one"),
    ],
)
def test_bad_scenarios_are_refused_naming_the_problem(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(_data(**change), time_scale=1)


def test_fleet_size_is_shared_out_in_proportion() -> None:
    data = _data(groups=[{"name": "a", "devices": 30}, {"name": "b", "devices": 10}], events=[])
    scenario = parse_scenario(data, time_scale=1).with_devices(8)
    assert [g.devices for g in scenario.groups] == [6, 2]
