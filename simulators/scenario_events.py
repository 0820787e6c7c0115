"""The `[[events]]` of a scenario: what happens to which devices, when (real seconds).

`drop` with `for_s` and `flap` are expanded here into plain drop and restore actions, so the
player only knows single steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from telecare.protocol.messages import AlarmEvent
from telecare.simulators.scenario_errors import ScenarioError


class Do(StrEnum):
    DROP = "drop"  # mode: hang | network | shutdown
    RESTORE = "restore"  # optional network: the bearer the hub comes back on
    MAINS_OFF = "mains_off"
    MAINS_ON = "mains_on"
    STAGE = "stage"  # stage: migration stage, through the API
    ALARM = "alarm"  # event, times, spread_s
    PERIPHERAL = "peripheral"  # kind, lost, battery_pct
    CLOCK = "clock"  # skew_s: device clock offset (not scaled: it is a clock, not a duration)
    BAD = "bad"  # kinds: what a misbehaving device or intruder sends
    OPERATOR_ACK = "operator_ack"  # event (optional): an operator takes the devices' open alarms
    FLAP = "flap"  # expanded: times x (drop, restore after down_s), every every_s
    RESTART = "restart"  # mode: term | kill, down_s: the service restarts (no group)


RESTART_MODES = ("term", "kill")  # SIGTERM (a clean stop) or SIGKILL (the process dies)


class DropMode(StrEnum):
    HANG = "hang"  # firmware hang: connected, no heartbeats
    NETWORK = "network"  # TCP dies without DISCONNECT: the broker publishes the Last Will
    SHUTDOWN = "shutdown"  # clean: status offline, then DISCONNECT


BAD_KINDS = ("invalid_json", "oversized", "wrong_type", "unregistered", "spoof", "bad_topic")


@dataclass(frozen=True)
class Action:
    at_s: float
    group: str
    do: Do
    count: int | None = None
    share: float | None = None
    from_end: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    def select(self, size: int) -> range:
        """Indices within the group this action applies to."""
        if self.count is not None:
            n = min(size, self.count)
        elif self.share is not None:
            n = min(size, math.ceil(size * self.share - 1e-9))
        else:
            n = size
        return range(size - n, size) if self.from_end else range(n)


def parse_actions(
    tables: list[dict[str, Any]], groups: set[str], scale: float, origin: str
) -> tuple[Action, ...]:
    actions: list[Action] = []
    for number, raw in enumerate(tables, start=1):
        where = f"{origin} event {number}"
        actions.extend(_expand(_action(raw, groups, scale, where), raw, scale, where))
    return tuple(sorted(actions, key=lambda a: a.at_s))


def _action(raw: dict[str, Any], groups: set[str], scale: float, where: str) -> Action:
    try:
        do = Do(str(raw.get("do")))
    except ValueError:
        raise ScenarioError(f"{where}: do must be one of {[d.value for d in Do]}") from None
    group = raw.get("group")
    if do is Do.RESTART:  # the service, not a group of devices
        if group is not None:
            raise ScenarioError(f"{where}: a restart event restarts the service: give no group")
        group = ""
    elif group not in groups:
        raise ScenarioError(f"{where}: group must be one of {sorted(groups)}, got {group!r}")
    at_s = raw.get("at_s")
    if not isinstance(at_s, int | float) or at_s < 0:
        raise ScenarioError(f"{where}: at_s must be a number >= 0")
    count, share = raw.get("count"), raw.get("share")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ScenarioError(f"{where}: count must be an integer >= 0")
    if share is not None and (not isinstance(share, int | float) or not 0 <= share <= 1):
        raise ScenarioError(f"{where}: share must be between 0 and 1")
    pick = raw.get("pick", "first")
    if pick not in ("first", "last"):
        raise ScenarioError(f"{where}: pick must be 'first' or 'last'")
    params = {
        k: v
        for k, v in raw.items()
        if k not in {"do", "group", "at_s", "count", "share", "pick", "for_s"}
    }
    stagger_s = params.get("stagger_s", 0)
    if not isinstance(stagger_s, int | float) or stagger_s < 0:
        raise ScenarioError(f"{where}: stagger_s must be a number >= 0")
    if stagger_s:
        params["stagger_s"] = stagger_s / scale
    if do is Do.RESTART:
        _check_restart(params, scale, where)
    else:
        _check_params(do, params, scale, where)
    return Action(at_s / scale, group, do, count, share, pick == "last", params)


def _check_params(do: Do, params: dict[str, Any], scale: float, where: str) -> None:
    if do in (Do.DROP, Do.FLAP):
        mode = params.setdefault("mode", DropMode.NETWORK.value)
        if mode not in {m.value for m in DropMode}:
            raise ScenarioError(f"{where}: mode must be one of {[m.value for m in DropMode]}")
    if do is Do.STAGE and not isinstance(params.get("stage"), str):
        raise ScenarioError(f'{where}: a stage event needs stage = "..."')
    if do is Do.BAD:
        kinds = params.get("kinds", list(BAD_KINDS))
        if not isinstance(kinds, list) or any(k not in BAD_KINDS for k in kinds):
            raise ScenarioError(f"{where}: kinds must be a list drawn from {BAD_KINDS}")
        params["kinds"] = kinds
    if do is Do.ALARM:
        times, gap_s = params.setdefault("times", 1), params.get("gap_s", 0)
        if not isinstance(times, int) or times < 1 or not isinstance(gap_s, int | float):
            raise ScenarioError(f"{where}: an alarm event takes times (>= 1) and gap_s")
        params["gap_s"] = gap_s / scale
        try:
            params["event"] = AlarmEvent(params.get("event", "pendant"))
        except ValueError:
            raise ScenarioError(f"{where}: unknown alarm event {params.get('event')!r}") from None
    if do is Do.CLOCK and not isinstance(params.get("skew_s"), int | float):
        raise ScenarioError(f"{where}: a clock event needs skew_s (seconds, may be negative)")
    if do is Do.PERIPHERAL and not isinstance(params.get("kind"), str):
        raise ScenarioError(f'{where}: a peripheral event needs kind = "pendant" (for example)')


def _check_restart(params: dict[str, Any], scale: float, where: str) -> None:
    if params.setdefault("mode", "term") not in RESTART_MODES:
        raise ScenarioError(f"{where}: a restart's mode must be one of {RESTART_MODES}")
    down_s = params.setdefault("down_s", 0)
    if not isinstance(down_s, int | float) or down_s < 0:
        raise ScenarioError(f"{where}: a restart's down_s must be a number >= 0")
    params["down_s"] = down_s / scale


def _expand(action: Action, raw: dict[str, Any], scale: float, where: str) -> list[Action]:
    """Plain actions for `drop ... for_s` and `flap`; the action itself otherwise."""
    if action.do is Do.FLAP:
        times, every_s, down_s = raw.get("times"), raw.get("every_s"), raw.get("down_s")
        if not (isinstance(times, int) and times > 0):
            raise ScenarioError(f"{where}: flap needs times (an integer > 0)")
        if not all(isinstance(v, int | float) and v > 0 for v in (every_s, down_s)):
            raise ScenarioError(f"{where}: flap needs every_s and down_s (seconds > 0)")
        assert isinstance(every_s, int | float) and isinstance(down_s, int | float)
        if down_s >= every_s:
            raise ScenarioError(f"{where}: flap needs down_s < every_s")
        steps = []
        for n in range(times):
            start = action.at_s + n * every_s / scale
            steps += _drop_and_restore(action, start, down_s / scale)
        return steps
    for_s = raw.get("for_s")
    if action.do is Do.DROP and for_s is not None:
        if not isinstance(for_s, int | float) or for_s <= 0:
            raise ScenarioError(f"{where}: for_s must be a number > 0")
        return _drop_and_restore(action, action.at_s, for_s / scale)
    return [action]


def _drop_and_restore(action: Action, at_s: float, down_s: float) -> list[Action]:
    staggered = {k: v for k, v in action.params.items() if k == "stagger_s"}
    drop = Action(
        at_s,
        action.group,
        Do.DROP,
        action.count,
        action.share,
        action.from_end,
        {"mode": action.params["mode"], **staggered},
    )
    restore = Action(
        at_s + down_s,
        action.group,
        Do.RESTORE,
        action.count,
        action.share,
        action.from_end,
        {k: v for k, v in action.params.items() if k in ("network", "stagger_s")},
    )
    return [drop, restore]
