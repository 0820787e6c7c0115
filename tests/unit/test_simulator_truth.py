"""The ground-truth predictor and the matcher on small hand-made timelines: cheap and exact."""

from __future__ import annotations

from typing import Any

import pytest

from telecare.simulators.truth.check import CheckResult
from telecare.simulators.truth.expect import Expected, Tolerance
from telecare.simulators.truth.match import ApiAlert, match_alerts
from telecare.simulators.truth.predict import Prediction, predict
from telecare.simulators.truth.thresholds import ALL_TYPES, Rules

T0 = 1_800_000_000.0
TOL = Tolerance()
EVERYTHING = frozenset(ALL_TYPES)
LIVENESS = frozenset({"heartbeat_missed", "migration_dropout", "connection_lost"})
RULES = Rules(
    alarm_ack_target_s=10, peripheral_supervision_s=20, flapping_window_s=30, area_window_s=50
)


def registered(
    at: float = 0, interval: int = 10, grace: int | None = 5, stage: str = "analogue"
) -> dict[str, Any]:
    return {"t": T0 + at, "k": "registered", "interval": interval, "grace": grace, "stage": stage}


def hb(
    at: float,
    *,
    power: str = "mains",
    battery: int = 90,
    network: str = "4g",
    periph: list[list[Any]] | None = None,
) -> dict[str, Any]:
    return {
        "t": T0 + at,
        "k": "hb",
        "power": power,
        "battery": battery,
        "network": network,
        "periph": periph or [],
    }


def ev(at: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": T0 + at, "k": kind, **fields}


def run(
    events: list[dict[str, Any]],
    *,
    end: float,
    built: frozenset[str] = EVERYTHING,
    district: str = "SW1A",
) -> Prediction:
    return predict(
        {"dev-1": {"district": district, "timeline": events}},
        RULES,
        built=built,
        ended_at=T0 + end,
        tolerance=TOL,
    )


def summary(prediction: Prediction) -> list[tuple[str, float, float | None, str | None, bool]]:
    """(type, nominal raise, nominal resolve, by, certain) relative to T0, in raise order."""
    rows = []
    for e in prediction.alerts:
        raised = round(e.raised[0] + TOL.early_s - T0, 2)
        resolved = None if e.resolved is None else round(e.resolved[0] + TOL.early_s - T0, 2)
        rows.append((e.type, raised, resolved, e.resolved_by, e.certain))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def test_silence_past_interval_plus_grace_raises_heartbeat_missed_resolved_by_next_beat() -> None:
    events = [registered(), hb(1), hb(10), hb(40)]
    assert summary(run(events, end=50)) == [("heartbeat_missed", 25, 40, "device", True)]


def test_a_beat_racing_the_deadline_makes_the_alert_allowed_not_expected() -> None:
    events = [registered(), hb(1), hb(16.5), hb(25)]  # deadline 16: the beat is 0.5 s late
    assert summary(run(events, end=35)) == [("heartbeat_missed", 16, 16.5, "device", False)]


def test_never_seen_device_is_overdue_from_registration_and_deadline_after_end_is_not_judged() -> (
    None
):
    assert summary(run([registered()], end=40)) == [("heartbeat_missed", 15, None, None, True)]
    assert run([registered()], end=10).alerts == []


def test_an_attached_device_carries_its_last_heartbeat_and_supply_over() -> None:
    earlier = registered(at=-500)
    earlier.update(last_hb=T0 - 30, power="battery")  # overdue at -30 + 15, before the run
    events = [earlier, hb(5, power="battery"), hb(15, power="battery")]
    prediction = predict(
        {"dev-1": {"district": "SW1A", "timeline": events}},
        RULES,
        built=EVERYTHING,
        ended_at=T0 + 25,
        tolerance=TOL,
        started_at=T0,
    )
    assert summary(prediction) == []  # that alert was the earlier run's; no new mains alert


def test_last_will_raises_connection_lost_at_once_and_online_resolves_it() -> None:
    events = [registered(), hb(1), ev(5, "offline", reason="lwt"), ev(8, "online"), hb(8)]
    assert summary(run(events, end=15)) == [("connection_lost", 5, 8, "device", True)]


def test_in_progress_device_drops_out_and_a_stage_change_while_overdue_supersedes() -> None:
    events = [registered(), hb(1), ev(5, "stage", stage="in_progress")]
    assert summary(run(events, end=30)) == [("migration_dropout", 20, None, None, True)]
    events = [registered(), hb(1), ev(30, "stage", stage="in_progress")]
    assert summary(run(events, end=60)) == [
        ("heartbeat_missed", 16, 45, "superseded", True),
        ("migration_dropout", 45, None, None, True),
    ]


def test_power_battery_and_peripherals_follow_the_thresholds_with_hysteresis() -> None:
    events = [
        registered(),
        hb(1, periph=[["pendant-1", 90, 3]]),
        hb(9, power="battery", battery=19, periph=[["pendant-1", 15, 25]]),
        hb(17, power="battery", battery=22, periph=[["pendant-1", 22, 2]]),
        hb(25, power="mains", battery=26, periph=[["pendant-1", 80, 2]]),
    ]
    assert summary(run(events, end=30)) == [
        ("battery_low", 9, 25, "device", True),
        ("mains_power_lost", 9, 25, "device", True),
        ("peripheral_battery_low", 9, 25, "device", True),
        ("peripheral_lost", 9, 17, "device", True),
    ]


def test_alarm_unhandled_only_for_alarms_a_person_raised() -> None:
    events = [
        registered(),
        hb(1),
        ev(2, "alarm", msg_id="a1", event="fall"),
        ev(3, "alarm", msg_id="a2", event="test"),
        ev(2.1, "ack", msg_id="a1", result="accepted"),
    ]
    prediction = run(events, end=15)
    assert summary(prediction) == [("alarm_unhandled", 12, None, None, True)]
    assert [(a.msg_id, a.must_store) for a in prediction.alarms] == [("a1", True), ("a2", True)]


def test_an_operator_taking_the_alarm_in_time_prevents_alarm_unhandled_later_resolves_it() -> None:
    events = [
        registered(),
        hb(1),
        ev(2, "alarm", msg_id="a1", event="fall"),
        ev(3, "alarm", msg_id="a2", event="pendant"),
        ev(5, "operator_ack", msg_id="a1"),
        ev(14, "operator_ack", msg_id="a2"),
    ]
    assert summary(run(events, end=15.5)) == [("alarm_unhandled", 13, 14, "system", True)]


def _flaps(times: int, *, dies: bool = False) -> list[dict[str, Any]]:
    events = [registered(grace=20), hb(0.5)]
    for n in range(times):
        down = 2 + 4 * n
        events += [ev(down, "offline", reason="lwt"), ev(down + 1, "online"), hb(down + 1)]
    if dies:
        events.append(ev(2 + 4 * times, "offline", reason="lwt"))
    else:
        events += [hb(30), hb(50)]
    return events


def test_third_drop_opens_flapping_which_swallows_later_drops_until_quiet() -> None:
    rows = summary(run(_flaps(4), end=60))
    assert rows == [
        ("connection_lost", 2, 3, "device", True),
        ("connection_lost", 6, 7, "device", True),
        ("connection_lost", 10, 11, "device", False),  # the drop that opened flapping
        ("flapping", 10, 44, "system", True),  # last drop at 14, quiet for 30 s
    ]


def test_a_device_that_dies_while_flapping_is_alerted_when_flapping_ends() -> None:
    rows = summary(run(_flaps(3, dies=True), end=60))
    assert ("flapping", 10, 44, "system", True) in rows
    assert ("connection_lost", 44, None, None, True) in rows
    assert ("heartbeat_missed", 44, None, None, True) in rows


def test_without_flapping_built_every_drop_is_a_connection_lost() -> None:
    rows = summary(run(_flaps(4), end=60, built=LIVENESS))
    assert [r[:2] for r in rows] == [("connection_lost", at) for at in (2, 6, 10, 14)]
    assert all(r[4] for r in rows)


def _district(drops: int, size: int, *, back_at: list[float]) -> dict[str, dict[str, Any]]:
    devices = {}
    for n in range(size):
        events = [registered(grace=100), hb(1, network=f"net{n}")]
        if n < drops:
            events += [
                ev(10, "offline", reason="lwt"),
                ev(back_at[n], "online"),
                hb(back_at[n], network=f"net{n}"),
            ]
        devices[f"dev-{n}"] = {"district": "SW1A", "timeline": events}
    return devices


def test_area_outage_raised_at_the_fifth_drop_and_resolved_when_fewer_remain() -> None:
    back = [14.0, 30.0, 31.0, 32.0, 33.0, 34.0]
    prediction = predict(
        _district(6, 10, back_at=back), RULES, built=EVERYTHING, ended_at=T0 + 40, tolerance=TOL
    )
    area = [e for e in prediction.alerts if e.type == "area_outage"]
    assert [(e.area, round(e.raised[0] + TOL.early_s - T0), e.resolved_by) for e in area] == [
        ("postcode:SW1A", 10, "system")
    ]
    assert area[0].resolved is not None
    assert round(area[0].resolved[0] + TOL.early_s - T0) == 30  # 4 still down < threshold 5
    lost = {e.device_id: e.groups for e in prediction.alerts if e.type == "connection_lost"}
    assert lost["dev-0"] == ["postcode:SW1A"]  # back before the area resolved: stays grouped
    assert lost["dev-5"] == [None]  # still down when it resolved: a straggler, ungrouped
    assert lost["dev-2"] == [None, "postcode:SW1A"]  # back 1 s after it resolved: either


def test_four_drops_in_a_district_of_ten_are_no_area_outage() -> None:
    prediction = predict(
        _district(4, 10, back_at=[20.0] * 4),
        RULES,
        built=EVERYTHING,
        ended_at=T0 + 40,
        tolerance=TOL,
    )
    assert [e for e in prediction.alerts if e.type == "area_outage"] == []


def _api(
    alert_id: int,
    kind: str,
    raised: float,
    resolved: float | None = None,
    by: str | None = "device",
) -> ApiAlert:
    return ApiAlert(
        alert_id,
        kind,
        "dev-1",
        None,
        T0 + raised,
        None if resolved is None else T0 + resolved,
        by if resolved is not None else None,
        None,
    )


def _match(expected: list[Expected], shown: list[ApiAlert]) -> CheckResult:
    result = CheckResult()
    match_alerts(
        Prediction(alerts=expected),
        shown,
        LIVENESS,
        group_areas={},
        ended_at=T0 + 100,
        tolerance=TOL,
        result=result,
    )
    return result


def _expected(raised: float, resolved: float | None, *, certain: bool = True) -> Expected:
    return Expected(
        "heartbeat_missed",
        TOL.window(T0 + raised, deadline=True),
        device_id="dev-1",
        resolved=None if resolved is None else TOL.window(T0 + resolved, deadline=False),
        resolved_by=None if resolved is None else "device",
        certain=certain,
    )


def test_matcher_accepts_alerts_inside_their_windows() -> None:
    result = _match([_expected(20, 40)], [_api(1, "heartbeat_missed", 20.8, 40.1)])
    assert (result.misses, result.false, result.matched) == ([], [], 1)


@pytest.mark.parametrize(
    ("shown", "problem"),
    [
        ([], "API shows none"),
        ([_api(1, "heartbeat_missed", 27)], "API shows #1 raised"),
        ([_api(1, "heartbeat_missed", 20.5, 60)], "resolved outside the expected window"),
        ([_api(1, "heartbeat_missed", 20.5)], "still open, should be resolved"),
        ([_api(1, "heartbeat_missed", 20.5, 40, by="system")], "resolved by system"),
    ],
)
def test_matcher_reports_each_miss_with_what_the_api_showed(
    shown: list[ApiAlert], problem: str
) -> None:
    result = _match([_expected(20, 40)], shown)
    assert len(result.misses) == 1
    assert problem in result.misses[0]
    assert "heartbeat_missed" in result.misses[0] and "dev-1" in result.misses[0]


def test_matcher_reports_unexpected_alerts_of_built_types_only() -> None:
    shown = [_api(1, "connection_lost", 5, 6), _api(2, "battery_low", 5)]
    result = _match([], shown)
    assert len(result.false) == 1 and "#1" in result.false[0]


def test_allowed_alerts_may_appear_or_not() -> None:
    allowed = _expected(20, 21, certain=False)
    assert _match([allowed], []).ok
    assert _match([allowed], [_api(1, "heartbeat_missed", 20.2, 21)]).ok
