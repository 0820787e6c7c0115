"""Imports flow one way: each package of `telecare` may import only the packages listed under it.

The rule of README.md ("Imports flow one way"), read from the source with `ast`: a module that
reaches upward (the alert engine importing the API) or a cycle between packages fails the build,
and so does a bare top-level import (`import ingest`) that would load a module a second time
under another name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Package -> the packages of telecare it may import (besides itself). Lowest first.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "protocol": frozenset({"core"}),
    "db": frozenset({"core"}),
    "mqtt": frozenset({"core"}),
    "devices": frozenset({"core", "protocol", "db", "mqtt"}),
    "alarms": frozenset({"core", "protocol", "db", "operator_queue"}),
    "operator_queue": frozenset({"core", "db"}),
    "alerts": frozenset({"core", "protocol", "db", "mqtt"}),
    "ingest": frozenset({"core", "protocol", "db", "mqtt", "alarms"}),
    "simulators": frozenset({"core", "protocol", "mqtt"}),
    "api": frozenset(
        {"core", "protocol", "db", "mqtt", "devices", "alarms", "operator_queue", "alerts"}
    ),
    # telecare/cli.py, service.py and the other modules beside the links: the composition
    "telecare": frozenset(
        {
            "core", "protocol", "db", "mqtt", "devices", "alarms", "operator_queue", "alerts",
            "ingest", "simulators", "api",
        }
    ),
}  # fmt: skip


def _modules() -> Iterator[tuple[str, Path]]:
    """(package, file) for every module of the namespace, read through its real folder."""
    for package in MAY_IMPORT:
        if package == "telecare":
            yield from ((package, path) for path in sorted((ROOT / "telecare").glob("*.py")))
        else:
            yield from ((package, path) for path in sorted((ROOT / package).rglob("*.py")))


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "telecare":
                yield from ((node.lineno, f"telecare.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, node.module


def _violations() -> list[str]:
    found = []
    for package, path in _modules():
        where = path.relative_to(ROOT)
        for line, name in _imported(path):
            top, _, rest = name.partition(".")
            if top in MAY_IMPORT and top != "telecare":
                found.append(f"{where}:{line} imports {name}: write telecare.{name}")
            if top != "telecare" or not rest:
                continue
            target = rest.split(".")[0]
            if target not in MAY_IMPORT:  # telecare.cli, telecare.service
                target = "telecare"
            if target != package and target not in MAY_IMPORT[package]:
                found.append(f"{where}:{line} imports {name}: {package} may not import {target}")
    return found


def test_the_rule_itself_has_no_cycle() -> None:
    try:
        order = list(TopologicalSorter(MAY_IMPORT).static_order())
    except CycleError as cycle:  # pragma: no cover - fails the build with the cycle named
        pytest.fail(f"the import rule has a cycle: {cycle.args[1]}")
    assert order[0] == "core" and order[-1] == "telecare"


def test_every_package_imports_only_what_lies_below_it() -> None:
    assert _violations() == []


def test_every_concept_folder_is_linked_into_the_namespace() -> None:
    for package in MAY_IMPORT.keys() - {"telecare"}:
        link = ROOT / "telecare" / package
        assert link.is_symlink(), f"telecare/{package} must link to ../{package}"
        assert link.resolve() == (ROOT / package).resolve()
