"""The wheel as a user gets it: built from the checkout, installed in a virtualenv of its own
outside the checkout, and every `telecare` command run from there.

.venv's editable install sees the checkout's folders whatever pyproject.toml says, so only a
built wheel shows a module or data file that packaging leaves out, or a generic top-level
package that it would add to site-packages.

The wheel is built from a copy of the checkout: setuptools builds inside the source tree, and a
build/ left there from an earlier layout would put deleted modules back into the wheel; the
copy also leaves nothing behind in the checkout. pip builds with the [build-system]
requirements of pyproject.toml, as a user's pip does, not with .venv's own setuptools (what the
venv module happened to ship, older than those requirements and without bdist_wheel).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import psycopg
import pytest

from tests.brokers import PrivateBroker, free_port
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "telecare"
MIGRATIONS = sorted((ROOT / "db" / "migrations").glob("*.sql"))
SCENARIOS = sorted((ROOT / "simulators" / "scenarios").glob("*.toml"))
CONSOLE = ROOT / "api" / "console" / "static"
COMMANDS = ("db", "run", "token", "simulate")
# What pyproject.toml's package-data must bring along, as the wheel names it.
PACKAGE_DATA = {
    "migrations": [f"telecare/db/migrations/{p.name}" for p in MIGRATIONS],
    "scenarios": [f"telecare/simulators/scenarios/{p.name}" for p in SCENARIOS],
    "console files": [
        f"telecare/api/console/static/{p.relative_to(CONSOLE).as_posix()}"
        for p in sorted(CONSOLE.rglob("*"))
        if p.is_file()
    ],
}

# History, virtualenvs, caches and earlier builds at the top of the checkout: nothing a user's
# wheel is built from.
_NOT_SOURCE_AT_TOP = frozenset(
    {".git", ".venv", "build", "dist", "var", ".hypothesis", ".mypy_cache", ".ruff_cache"}
)
_BUILD_TIMEOUT_S = 300  # a first build on a machine fetches setuptools from the index
_INSTALL_TIMEOUT_S = 300  # a first install fetches every dependency; pip's cache makes a repeat
_COMMAND_TIMEOUT_S = 60


def _not_source(folder: str, names: list[str]) -> set[str]:
    at_top = Path(folder) == ROOT
    return {
        name
        for name in names
        if name == "__pycache__"
        or name.endswith(".egg-info")
        or (at_top and (name in _NOT_SOURCE_AT_TOP or name.startswith(".pytest")))
    }


def _package_files() -> set[str]:
    """Every file of the `telecare` package in the checkout, as the wheel must name it."""
    found = set()
    for folder, subfolders, files in os.walk(PACKAGE, followlinks=True):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        for name in files:
            relative = Path(folder, name).relative_to(ROOT)
            found.add(PurePosixPath(*relative.parts).as_posix())
    return found


@dataclass(frozen=True)
class Wheel:
    path: Path
    names: frozenset[str]


@dataclass(frozen=True)
class Installed:
    """The wheel in a fresh virtualenv; commands run in a folder outside the checkout."""

    venv: Path
    workdir: Path
    env: dict[str, str]

    def run(
        self, program: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / program), *args],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )

    def telecare(self, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
        return self.run("telecare", *args, env={"TELECARE_DATABASE_URL": database_url})


@dataclass
class Running:
    """`telecare run` from the virtualenv, on a database and the session's broker."""

    process: subprocess.Popen[bytes]
    url: str
    database_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _outside_env(venv: Path) -> dict[str, str]:
    """This environment without the checkout's Python path and the tests' TELECARE_* settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TELECARE_")
        and name not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, (
        f"{what} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    source = tmp_path_factory.mktemp("wheel-source") / "checkout"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_not_source)
    dist = tmp_path_factory.mktemp("wheel-dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(source)],
        cwd=dist,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
        check=False,
    )
    _checked(built, "pip wheel")
    (path,) = dist.glob("telecare_backend-*.whl")
    with zipfile.ZipFile(path) as archive:
        return Wheel(path, frozenset(archive.namelist()))


@pytest.fixture(scope="module")
def installed(wheel: Wheel, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    home = tmp_path_factory.mktemp("wheel-user")
    assert not home.resolve().is_relative_to(ROOT), "the virtualenv must be outside the checkout"
    venv, workdir = home / "venv", home / "work"
    workdir.mkdir()
    env = _outside_env(venv)
    # .venv's interpreter makes a virtualenv on its base Python 3.11, without .venv's packages
    created = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT_S,
        check=False,
    )
    _checked(created, "python -m venv")
    # the dependency versions CI tests with (constraints.txt), as setup.sh installs them
    constraints = ROOT / "constraints.txt"
    pip = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-c",
            str(constraints),
            str(wheel.path),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=_INSTALL_TIMEOUT_S,
        check=False,
    )
    _checked(pip, "pip install of the wheel")
    return Installed(venv, workdir, env)


@pytest.fixture(scope="module")
def running(installed: Installed, broker: PrivateBroker) -> Iterator[Running]:
    database_url = create_database(ADMIN_URL)
    _checked(installed.telecare("db", "upgrade", database_url=database_url), "telecare db upgrade")
    port = free_port()
    env = {
        **installed.env,
        "TELECARE_DATABASE_URL": database_url,
        "TELECARE_MQTT_URL": broker.url,
        "TELECARE_MQTT_CLIENT_ID": f"wheel-test-{uuid.uuid4().hex[:8]}",
        "TELECARE_API_HOST": "127.0.0.1",
        "TELECARE_API_PORT": str(port),
        "TELECARE_HEARTBEAT_FLUSH_MS": "50",
    }
    log = installed.workdir / "telecare-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(installed.venv / "bin" / "telecare"), "run"],
            cwd=installed.workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Running(process, f"http://127.0.0.1:{port}", database_url, log)
    try:
        _wait_ready(service, within_s=60)
        yield service
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        drop_database(ADMIN_URL, database_url)


def _wait_ready(service: Running, *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if service.process.poll() is not None:
            pytest.fail(
                f"telecare run exited {service.process.returncode}:\n{service.log_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            log = service.log_text()[-3000:]
            pytest.fail(f"telecare run not ready within {within_s} s:\n{log}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def technician_token(installed: Installed, running: Running) -> str:
    command = ["token", "create", "--role", "technician", "--name", "wheel-test"]
    made = installed.telecare(*command, database_url=running.database_url)
    _checked(made, "telecare token create")
    return made.stdout.strip().splitlines()[-1]


# The wheel's contents


def test_wheel_holds_every_file_of_the_package(wheel: Wheel) -> None:
    missing = sorted(_package_files() - wheel.names)
    assert not missing, f"the wheel leaves out: {missing}"


@pytest.mark.parametrize("what", sorted(PACKAGE_DATA))
def test_wheel_holds_the_package_data(wheel: Wheel, what: str) -> None:
    expected = PACKAGE_DATA[what]
    assert expected, f"no {what} in the checkout"
    missing = sorted(set(expected) - wheel.names)
    assert not missing, f"the wheel leaves out {what}: {missing}"


def test_wheel_installs_no_top_level_package_but_telecare(wheel: Wheel) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.names}
    others = sorted(top for top in tops if top != "telecare" and not top.endswith(".dist-info"))
    assert not others, f"the wheel would put these into site-packages: {others}"


# The installed package


def test_installed_telecare_imports_from_the_virtualenv(installed: Installed) -> None:
    script = "import json, sys, telecare.cli; print(json.dumps([telecare.cli.__file__, sys.path]))"
    shown = installed.run("python", "-c", script)
    _checked(shown, "python -c 'import telecare.cli'")
    module, path = json.loads(shown.stdout)
    assert Path(module).is_relative_to(installed.venv / "lib"), module
    assert "site-packages" in Path(module).parts, module
    # '' on sys.path is the working directory, outside the checkout
    inside = [p for p in path if (installed.workdir / p).resolve().is_relative_to(ROOT)]
    assert not inside, f"the checkout is on sys.path: {inside}"


def test_installed_requirements_are_consistent(installed: Installed) -> None:
    _checked(installed.run("python", "-m", "pip", "check"), "pip check")


def test_help_lists_every_command(installed: Installed) -> None:
    shown = installed.run("telecare", "--help")
    _checked(shown, "telecare --help")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", shown.stdout, re.MULTILINE), shown.stdout


def test_simulate_lists_the_shipped_scenarios(installed: Installed) -> None:
    listed = installed.run("telecare", "simulate", "--list")
    _checked(listed, "telecare simulate --list")
    assert listed.stdout.split() == [p.stem for p in SCENARIOS]


def test_db_upgrade_applies_each_migration_once(installed: Installed) -> None:
    database_url = create_database(ADMIN_URL)
    try:
        first = installed.telecare("db", "upgrade", database_url=database_url)
        _checked(first, "telecare db upgrade")
        versions = ", ".join(str(int(p.name.split("_", 1)[0])) for p in MIGRATIONS)
        assert f"migrations applied: {versions}" in first.stdout
        again = installed.telecare("db", "upgrade", database_url=database_url)
        _checked(again, "a second telecare db upgrade")
        assert "migrations applied: none (already up to date)" in again.stdout
        with psycopg.connect(database_url) as conn:
            count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count == (len(MIGRATIONS),)
    finally:
        drop_database(ADMIN_URL, database_url)


def test_db_prune_dry_run_reports_and_succeeds(installed: Installed, running: Running) -> None:
    pruned = installed.telecare("db", "prune", "--dry-run", database_url=running.database_url)
    _checked(pruned, "telecare db prune --dry-run")
    assert pruned.stdout.startswith("retention: telemetry ")


# `telecare run` from the virtualenv


def test_run_answers_healthz(running: Running) -> None:
    answer = httpx.get(f"{running.url}/healthz", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("url_path", "file"),
    [
        ("/", "index.html"),
        ("/console/css/console.css", "css/console.css"),
        ("/console/js/main.js", "js/main.js"),
        ("/console/icon.svg", "icon.svg"),
    ],
)
def test_run_serves_the_console_files_of_the_wheel(
    running: Running, url_path: str, file: str
) -> None:
    answer = httpx.get(f"{running.url}{url_path}", timeout=10)
    assert answer.status_code == 200, f"{url_path}: {answer.status_code}"
    assert answer.content == (CONSOLE / file).read_bytes()


def test_token_create_prints_a_token_the_api_accepts(
    running: Running, technician_token: str
) -> None:
    headers = {"Authorization": f"Bearer {technician_token}"}
    answer = httpx.get(f"{running.url}/api/v1/devices", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text


def test_simulate_registers_a_fleet_whose_heartbeats_arrive(
    installed: Installed, running: Running, broker: PrivateBroker, technician_token: str
) -> None:
    prefix = f"wheel-{uuid.uuid4().hex[:6]}"
    fleet = ["--devices", "2", "--interval", "10", "--duration", "2"]  # two ad-hoc hubs
    backend = ["--api-url", running.url, "--token", technician_token, "--mqtt-url", broker.url]
    simulated = installed.run("telecare", "simulate", *fleet, "--prefix", prefix, *backend)
    _checked(simulated, "telecare simulate")
    headers = {"Authorization": f"Bearer {technician_token}"}
    deadline = time.monotonic() + 15
    while True:
        page = httpx.get(f"{running.url}/api/v1/devices", headers=headers, timeout=10).json()
        ours = [d for d in page["items"] if d["device_id"].startswith(prefix)]
        if len(ours) == 2 and all(d["last_heartbeat_at"] for d in ours):
            return
        assert time.monotonic() < deadline, f"the fleet's heartbeats did not arrive: {ours}"
        time.sleep(0.1)


def test_run_stops_cleanly_on_sigterm(running: Running) -> None:
    """Last in this module: the other tests share the process it stops."""
    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(timeout=30)
    log = running.log_text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
