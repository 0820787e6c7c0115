"""Device simulators: virtual hubs, scenarios, ground truth and `--check` (docs/SIMULATOR.md)."""

from telecare.simulators.load import LoadOptions, LoadResult, run_load
from telecare.simulators.run import RunOptions, run_scenario
from telecare.simulators.scenario import (
    Scenario,
    available_scenarios,
    load_scenario,
    parse_scenario,
)
from telecare.simulators.scenario_errors import ScenarioError

__all__ = [
    "LoadOptions",
    "LoadResult",
    "RunOptions",
    "Scenario",
    "ScenarioError",
    "available_scenarios",
    "load_scenario",
    "parse_scenario",
    "run_load",
    "run_scenario",
]
