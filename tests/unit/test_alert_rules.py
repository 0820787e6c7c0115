"""The engine's rules on a manual clock: what each change of a device raises and resolves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from telecare.alerts.areas import AreaTracker
from telecare.alerts.clock import ManualClock
from telecare.alerts.decisions import Action, Group, Raise, Resolve, ResolveDevice, Ungroup, Update
from telecare.alerts.device_rules import DeviceRules, DeviceSnapshot
from telecare.alerts.rules import AlertRules
from telecare.alerts.types import AlertType
from telecare.alerts.unhandled_alarms import AlarmWatch
from telecare.core.settings import Settings
from telecare.protocol.messages import Heartbeat

RULES = AlertRules.from_settings(
    Settings(flapping_drops=3, flapping_window_s=100, area_min_devices=3, area_min_share=0.5)
)


class Engine:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.actions: list[Action] = []
        self.rules = DeviceRules(RULES, self.clock, self.actions.append)

    def track(self, device_id: str = "dev-1", *, window_s: int = 20, **fields: Any) -> None:
        since = self.clock.wall(self.clock.now())
        self.rules.track(
            DeviceSnapshot(device_id, window_s, fields.pop("migrating", False), since, **fields)
        )

    def beat(self, device_id: str = "dev-1", **fields: Any) -> None:
        body = {"msg_id": "m", "ts": "2026-12-01T00:00:00Z", "seq": 1, "interval_s": 10}
        body |= {"power": "mains", "battery_pct": 90, "signal_dbm": -70, "network": "4g"}
        assert self.rules.heartbeat(device_id, Heartbeat.model_validate(body | fields))

    def wait(self, seconds: float) -> None:
        self.rules.tick(self.clock.advance(seconds))

    def taken(self) -> list[tuple[str, str]]:
        """Each action as (kind, subject or by), then forgotten."""
        out = []
        for action in self.actions:
            if isinstance(action, Raise):
                out.append(("raise", action.subject))
            elif isinstance(action, Resolve):
                out.append((f"resolve by {action.by}", action.subject))
            elif isinstance(action, Update):
                out.append(("update", action.subject))
            elif isinstance(action, ResolveDevice):
                out.append(("resolve all", action.device_id))
        self.actions.clear()
        return out


def test_silence_raises_one_alert_at_the_deadline_and_a_heartbeat_resolves_it() -> None:
    engine = Engine()
    engine.track()
    engine.wait(19.9)
    assert engine.taken() == []
    engine.wait(0.2)
    assert engine.taken() == [("raise", "heartbeat_missed:dev-1")]
    engine.wait(100)
    assert engine.taken() == []  # one alert per silence, not one per missed beat
    engine.beat()
    assert engine.taken() == [("resolve by device", "heartbeat_missed:dev-1")]
    engine.wait(19)
    engine.beat()
    engine.wait(19)
    assert engine.taken() == []


def test_a_stage_change_while_overdue_supersedes_the_alert_at_the_new_deadline() -> None:
    engine = Engine()
    engine.track()
    engine.wait(21)
    engine.taken()
    engine.track(migrating=True)  # moved to in_progress while silent
    engine.wait(19)
    assert engine.taken() == []
    engine.wait(2)
    assert engine.taken() == [
        ("resolve by superseded", "heartbeat_missed:dev-1"),
        ("raise", "migration_dropout:dev-1"),
    ]


def test_power_and_battery_alerts_follow_changes_with_hysteresis() -> None:
    engine = Engine()
    engine.track()
    engine.beat(power="battery", battery_pct=19)
    engine.beat(power="battery", battery_pct=18)
    assert engine.taken() == [
        ("raise", "mains_power_lost:dev-1"),
        ("raise", "battery_low:dev-1"),
    ]
    engine.beat(power="mains", battery_pct=24)
    assert engine.taken() == [("resolve by device", "mains_power_lost:dev-1")]
    engine.beat(battery_pct=None)
    engine.beat(battery_pct=25)
    assert engine.taken() == [("resolve by device", "battery_low:dev-1")]


def test_flapping_replaces_the_stream_and_a_device_that_dies_is_alerted_when_it_ends() -> None:
    engine = Engine()
    engine.track()
    for _ in range(4):
        engine.rules.status("dev-1", "offline", "lwt")
        engine.wait(5)
        engine.beat()
    assert [a for a in engine.taken() if a[0] == "raise"] == [
        ("raise", "connection_lost:dev-1"),
        ("raise", "connection_lost:dev-1"),
        ("raise", "flapping:dev-1"),
    ]
    engine.rules.status("dev-1", "offline", "lwt")  # and it stays down
    engine.wait(25)  # overdue too: counted in the flapping alert, no alert of its own
    assert {kind for kind, _ in engine.taken()} == {"update"}
    engine.wait(100)  # no drop for a whole window: flapping ends, the silence shows
    assert engine.taken() == [
        ("resolve by system", "flapping:dev-1"),
        ("raise", "connection_lost:dev-1"),
        ("raise", "heartbeat_missed:dev-1"),
    ]


def test_a_restart_resolves_what_cleared_meanwhile_and_alerts_a_device_gone_offline() -> None:
    engine = Engine()
    engine.track(
        "back",
        open_types=frozenset({AlertType.BATTERY_LOW}),
        cleared_types=frozenset({AlertType.HEARTBEAT_MISSED}),
    )
    engine.track("gone", offline=True)
    engine.track("still", open_types=frozenset({AlertType.HEARTBEAT_MISSED}))
    assert engine.taken() == [
        ("resolve by device", "heartbeat_missed:back"),
        ("raise", "connection_lost:gone"),
    ]
    engine.wait(30)
    assert engine.taken() == [
        ("raise", "heartbeat_missed:back"),
        ("raise", "heartbeat_missed:gone"),
    ]
    engine.beat("still")
    assert engine.taken() == [("resolve by device", "heartbeat_missed:still")]


def test_a_restart_raises_and_resolves_mains_changes_it_did_not_see() -> None:
    engine = Engine()
    engine.track("went-to-battery", on_battery=True)
    engine.track(
        "still-on-battery", on_battery=True, open_types=frozenset({AlertType.MAINS_POWER_LOST})
    )
    engine.track("back-on-mains", open_types=frozenset({AlertType.MAINS_POWER_LOST}))
    assert engine.taken() == [
        ("raise", "mains_power_lost:went-to-battery"),
        ("resolve by device", "mains_power_lost:back-on-mains"),
    ]
    engine.beat("went-to-battery", power="battery")
    engine.beat("still-on-battery", power="battery")
    assert engine.taken() == []  # one alert per state change
    engine.beat("went-to-battery")
    assert engine.taken() == [("resolve by device", "mains_power_lost:went-to-battery")]


def test_decommissioning_resolves_everything_of_the_device() -> None:
    engine = Engine()
    engine.track()
    engine.rules.forget("dev-1", resolve=True)
    assert engine.taken() == [("resolve all", "dev-1")]
    engine.wait(100)
    assert engine.taken() == []


def test_an_alarm_not_taken_in_time_is_unhandled_until_it_is_taken() -> None:
    clock = ManualClock()
    actions: list[Action] = []
    watch = AlarmWatch(60, clock, actions.append)
    received = clock.wall(clock.now())
    watch.opened(1, "dev-1", "fall", received, raised=False)
    watch.opened(2, "dev-1", "test", received, raised=False)  # technical: never unhandled
    watch.opened(3, "dev-1", "smoke", received, raised=False)
    clock.advance(30)
    watch.taken(3)
    watch.tick(clock.advance(31))
    assert [(type(a).__name__, getattr(a, "subject", None)) for a in actions] == [
        ("Raise", "alarm_unhandled:1")
    ]
    watch.taken(1)
    assert [(type(a).__name__, getattr(a, "subject", None)) for a in actions[1:]] == [
        ("Resolve", "alarm_unhandled:1")
    ]


def test_an_area_outage_groups_its_members_and_resolves_below_the_threshold() -> None:
    actions: list[Action] = []
    areas = AreaTracker(RULES, actions.append)
    for n in range(6):
        areas.place(f"d{n}", "SW1A", "4g" if n < 3 else "wifi")
    t0 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    # threshold: max(3, ceil(0.5 * 6)) = 3 for the district; 3 for each bearer too (3 devices)
    areas.member_opened("connection_lost:d0", "d0", AlertType.CONNECTION_LOST, t0)
    areas.member_opened("connection_lost:d3", "d3", AlertType.CONNECTION_LOST, t0 + 1)
    assert actions == []
    areas.member_opened("heartbeat_missed:d0", "d0", AlertType.HEARTBEAT_MISSED, t0 + 2)
    assert actions == []  # still two devices: alerts are counted per device
    areas.member_opened("connection_lost:d4", "d4", AlertType.CONNECTION_LOST, t0 + 3)
    raise_, group = actions
    assert isinstance(raise_, Raise) and raise_.subject == "area_outage:postcode:SW1A:silence"
    assert raise_.details["members"] == 3 and raise_.details["threshold"] == 3
    assert isinstance(group, Group)
    assert set(group.members) == {
        "connection_lost:d0",
        "heartbeat_missed:d0",
        "connection_lost:d3",
        "connection_lost:d4",
    }
    actions.clear()
    areas.member_closed("connection_lost:d0", t0 + 10)
    assert actions == []  # d0 is still silent (heartbeat_missed)
    areas.member_closed("heartbeat_missed:d0", t0 + 11)
    assert [type(a) for a in actions] == [Ungroup, Resolve]


def test_silences_spread_wider_than_the_window_are_not_an_outage() -> None:
    actions: list[Action] = []
    areas = AreaTracker(RULES, actions.append)
    for n in range(4):
        areas.place(f"d{n}", "SW1A", None)
    t0 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    step = timedelta(seconds=RULES.area_window_s / 2 + 1).total_seconds()
    for n in range(4):
        areas.member_opened(
            f"connection_lost:d{n}", f"d{n}", AlertType.CONNECTION_LOST, t0 + n * step
        )
    assert actions == []


def test_many_silent_devices_on_one_bearer_are_one_outage_whatever_their_districts() -> None:
    actions: list[Action] = []
    areas = AreaTracker(RULES, actions.append)
    for n in range(8):  # one device per district: no district can reach its threshold
        areas.place(f"d{n}", f"Z{n}", "4g" if n < 4 else "wifi")
    t0 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    # threshold: max(3, ceil(0.5 * 4)) = 3 of the four 4g devices
    for n in (0, 1, 4):
        areas.member_opened(f"heartbeat_missed:d{n}", f"d{n}", AlertType.HEARTBEAT_MISSED, t0 + n)
    assert actions == []  # two on 4g, one on wifi
    areas.member_opened("heartbeat_missed:d2", "d2", AlertType.HEARTBEAT_MISSED, t0 + 5)
    raise_, group = actions
    assert isinstance(raise_, Raise) and raise_.subject == "area_outage:network:4g:silence"
    assert isinstance(group, Group)
    assert set(group.members) == {f"heartbeat_missed:d{n}" for n in (0, 1, 2)}
    actions.clear()
    areas.member_closed("heartbeat_missed:d1", t0 + 20)
    assert [type(a) for a in actions] == [Ungroup, Resolve]  # below the threshold again
