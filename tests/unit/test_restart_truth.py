"""The ground truth around a restart of the service: what waited at the broker counts when the
service came back, and what a caught-up engine rightly never raised is not demanded of it."""

from __future__ import annotations

import tomllib

import pytest

from telecare.simulators.scenario import parse_scenario
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.scenario_events import Do
from telecare.simulators.truth.expect import Expected
from telecare.simulators.truth.predict import predict
from tests.unit.test_simulator_truth import EVERYTHING, RULES, T0, TOL, hb, registered

# The service was stopped at T0+30 and answered /healthz again at T0+45.
OUTAGE = (T0 + 30, T0 + 45)


def alerts(events: list[dict[str, object]], *, end: float = 120) -> list[Expected]:
    return predict(
        {"dev-1": {"district": "SW1A", "timeline": events}},
        RULES,
        built=EVERYTHING,
        ended_at=T0 + end,
        tolerance=TOL,
        outages=[OUTAGE],
    ).alerts


def test_a_heartbeat_held_by_the_broker_means_no_alert_is_required() -> None:
    # deadline T0+35 (last beat T0+20, 10 + 5 s) falls in the outage; a beat sent at T0+33
    # reached the service when it came back: a caught-up engine raises nothing
    events = [registered(), hb(10), hb(20), hb(33), hb(50), hb(60), hb(70)]
    assert [a for a in alerts(events, end=75) if a.certain] == []


def test_a_device_silent_through_the_outage_is_alerted_once_the_service_is_back() -> None:
    events = [registered(), hb(10), hb(20)]
    (missed,) = alerts(events, end=120)
    assert (missed.type, missed.certain) == ("heartbeat_missed", True)
    low, high = missed.raised
    assert low <= T0 + 35 and high >= OUTAGE[1] + TOL.restart_s  # due at 35, judged after 45


def test_a_battery_heartbeat_sent_while_down_raises_mains_power_lost_when_it_is_received() -> None:
    events = [registered(), hb(10), hb(20), hb(32, power="battery"), hb(50, power="battery")]
    (lost,) = (a for a in alerts(events, end=120) if a.type == "mains_power_lost")
    assert lost.certain
    assert lost.raised[0] <= OUTAGE[1] <= lost.raised[1]


def test_far_from_a_restart_the_windows_are_the_usual_ones() -> None:
    events = [registered(), hb(10), hb(20), hb(50), hb(60), hb(70), hb(80)]
    late = [a for a in alerts(events, end=120) if a.raised[0] > T0 + 90]  # due at 95
    assert late and all(a.raised[1] - a.raised[0] < 5 for a in late)


def test_a_restart_event_takes_no_group_and_a_known_mode() -> None:
    base = """
name = "r"
duration_s = 60
[[groups]]
name = "g"
devices = 1
heartbeat_interval_s = 60
[[events]]
at_s = 10
do = "restart"
"""
    (restart,) = parse_scenario(
        tomllib.loads(base + 'mode = "kill"\ndown_s = 12\n'), time_scale=1
    ).actions
    assert (restart.do, restart.params["mode"], restart.params["down_s"]) == (
        Do.RESTART,
        "kill",
        12,
    )
    with pytest.raises(ScenarioError, match="mode must be one of"):
        parse_scenario(tomllib.loads(base + 'mode = "pause"\n'), time_scale=1)
    with pytest.raises(ScenarioError, match="give no group"):
        parse_scenario(tomllib.loads(base + 'group = "g"\n'), time_scale=1)
