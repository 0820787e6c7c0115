"""Scenario files (simulators/scenarios/*.toml, format in docs/SIMULATOR.md), loaded and scaled.

A file is written in scenario seconds; `load_scenario(path, time_scale=F)` divides every duration
by F, so what the rest of the simulator sees is already in real seconds. Anything the scaled
scenario cannot do within docs/PROTOCOL.md (a heartbeat interval under 10 s) is refused here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from telecare.protocol.messages import AlarmEvent
from telecare.simulators.scenario_errors import ScenarioError
from telecare.simulators.scenario_events import Action, parse_actions

SCENARIO_DIR = Path(__file__).parent / "scenarios"
NETWORKS = ("ethernet", "wifi", "4g", "5g", "lte-m", "nb-iot", "pstn-adapter")
MIN_INTERVAL_S = 10

# Backend thresholds that are durations (scaled) and those that are counts or shares (not).
_DURATION_RULES = (
    "alarm_ack_target_s",
    "peripheral_supervision_s",
    "flapping_window_s",
    "area_window_s",
)
_PLAIN_RULES = (
    "battery_low_pct",
    "battery_ok_pct",
    "flapping_drops",
    "area_min_devices",
    "area_min_share",
)


@dataclass(frozen=True)
class PeripheralSpec:
    kind: str
    battery_pct: int | None = 90


@dataclass(frozen=True)
class Group:
    """Devices that share a profile; times in real seconds."""

    name: str
    devices: int
    heartbeat_interval_s: int
    heartbeat_grace_s: int | None
    jitter: float
    postcodes: tuple[str, ...]
    networks: tuple[str, ...]
    migration_stage: str
    battery_pct: float
    battery_life_s: float
    charge_s: float
    alarm_every_s: float | None
    alarm_events: tuple[AlarmEvent, ...]
    alarm_resend_s: float
    peripherals: tuple[PeripheralSpec, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration_s: float
    time_scale: float
    seed: int
    groups: tuple[Group, ...]
    actions: tuple[Action, ...]
    backend: dict[str, Any] = field(default_factory=dict)

    @property
    def devices(self) -> int:
        return sum(g.devices for g in self.groups)

    def with_devices(self, total: int) -> Scenario:
        """The same scenario with `total` devices shared out in proportion (each group >= 1)."""
        if total < len(self.groups):
            raise ScenarioError(f"--devices must be at least {len(self.groups)} (one per group)")
        groups = [
            replace(g, devices=max(1, round(total * g.devices / self.devices))) for g in self.groups
        ]
        groups[0] = replace(
            groups[0], devices=groups[0].devices + total - sum(g.devices for g in groups)
        )
        if groups[0].devices < 1:
            raise ScenarioError(f"cannot share {total} devices among {len(groups)} groups")
        return replace(self, groups=tuple(groups))

    def backend_settings(self) -> dict[str, Any]:
        """The backend thresholds this scenario is written for, already scaled (Settings names)."""
        return dict(self.backend)


def scenario_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    return SCENARIO_DIR / f"{name_or_path}.toml"


def available_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str, *, time_scale: float = 1.0) -> Scenario:
    path = scenario_path(name_or_path)
    if not path.exists():
        raise ScenarioError(
            f"no scenario {name_or_path!r}; available: {', '.join(available_scenarios())}"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(data, time_scale=time_scale, origin=str(path))


def parse_scenario(
    data: dict[str, Any], *, time_scale: float, origin: str = "scenario"
) -> Scenario:
    if time_scale <= 0:
        raise ScenarioError("--time-scale must be positive")
    reader = _Reader(data, origin)
    defaults = data.get("defaults", {})
    groups = tuple(
        _group(_Reader({**defaults, **raw}, f"{origin} group {i + 1}"), time_scale)
        for i, raw in enumerate(reader.table_list("groups"))
    )
    if not groups:
        raise ScenarioError(f"{origin}: at least one [[groups]] table is needed")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{origin}: group names must be unique, got {names}")
    duration_s = reader.number("duration_s") / time_scale
    actions = parse_actions(reader.table_list("events"), set(names), time_scale, origin)
    late = [a for a in actions if a.at_s > duration_s]
    if late:
        raise ScenarioError(
            f"{origin}: event at {late[0].at_s * time_scale:g} s is after duration_s"
        )
    return Scenario(
        name=reader.text("name"),
        description=reader.text("description", ""),
        duration_s=duration_s,
        time_scale=time_scale,
        seed=int(reader.number("seed", 1)),
        groups=groups,
        actions=actions,
        backend=_backend(_Reader(data.get("backend", {}), f"{origin} [backend]"), time_scale),
    )


def _group(reader: _Reader, scale: float) -> Group:
    name = reader.text("name")
    interval = _scaled_int(reader.number("heartbeat_interval_s", 60), scale)
    if interval < MIN_INTERVAL_S:
        raise ScenarioError(
            f"group {name!r}: heartbeat_interval_s {reader.number('heartbeat_interval_s', 60):g} "
            f"/ time scale {scale:g} = {interval} s, under the minimum of docs/PROTOCOL.md "
            f"({MIN_INTERVAL_S} s); use a time scale of at most "
            f"{reader.number('heartbeat_interval_s', 60) / MIN_INTERVAL_S:g}"
        )
    grace = reader.optional_number("heartbeat_grace_s")
    networks = reader.text_list("network", ["4g"])
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown:
        raise ScenarioError(f"group {name!r}: unknown network {unknown}; one of {NETWORKS}")
    jitter = reader.number("jitter", 0.1)
    if not 0 <= jitter < 0.5:
        raise ScenarioError(f"group {name!r}: jitter must be in [0, 0.5)")
    alarm_every = reader.optional_number("alarm_every_s")
    try:
        events = tuple(AlarmEvent(e) for e in reader.text_list("alarm_events", ["pendant"]))
    except ValueError as exc:
        raise ScenarioError(f"group {name!r}: {exc}") from None
    return Group(
        name=name,
        devices=int(reader.number("devices")),
        heartbeat_interval_s=interval,
        heartbeat_grace_s=None if grace is None else _scaled_int(grace, scale),
        jitter=jitter,
        postcodes=tuple(reader.text_list("postcode", ["LS1 4AP"])),
        networks=tuple(networks),
        migration_stage=reader.text("migration_stage", "analogue"),
        battery_pct=reader.number("battery_pct", 100),
        battery_life_s=reader.number("battery_life_s", 24 * 3600) / scale,
        charge_s=reader.number("charge_s", 6 * 3600) / scale,
        alarm_every_s=None if alarm_every is None else alarm_every / scale,
        alarm_events=events,
        alarm_resend_s=max(1.0, reader.number("alarm_resend_s", 30) / scale),
        peripherals=tuple(
            PeripheralSpec(str(p["kind"]), p.get("battery_pct", 90))
            for p in reader.table_list("peripherals")
        ),
    )


def _backend(reader: _Reader, scale: float) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _DURATION_RULES:
        value = reader.optional_number(key)
        if value is not None:
            values[key] = max(1, _scaled_int(value, scale))
    for key in _PLAIN_RULES:
        if reader.optional_number(key) is not None:
            values[key] = reader.raw(key)
    return values


def _scaled_int(value: float, scale: float) -> int:
    return round(value / scale)


class _Reader:
    """Typed access to one TOML table, with errors that name the file and the key."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self._data = data
        self._origin = origin

    def _fail(self, key: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self._origin}: {key} must be {what}, got {self._data.get(key)!r}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self._data.get(key, default)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._fail(key, "a number >= 0")
        return float(value)

    def raw(self, key: str) -> Any:
        return self._data[key]

    def optional_number(self, key: str) -> float | None:
        return None if self._data.get(key) is None else self.number(key)

    def text_list(self, key: str, default: list[str]) -> list[str]:
        value = self._data.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a string or a non-empty list of strings")
        return value

    def table_list(self, key: str) -> list[dict[str, Any]]:
        value = self._data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._fail(key, "a list of tables ([[" + key + "]])")
        return value
