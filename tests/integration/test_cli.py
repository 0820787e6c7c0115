"""The `telecare` command as docs/PROTOCOL.md section 1 describes it, run as a process."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from telecare.api.tokens import token_digest


def _telecare(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TELECARE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "telecare", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_is_idempotent(empty_database_url: str) -> None:
    first = _telecare(empty_database_url, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    again = _telecare(empty_database_url, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    with psycopg.connect(empty_database_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == sorted(set(versions)) and len(versions) >= 7  # each applied once


def test_token_create_prints_the_token_on_its_last_line(empty_database_url: str) -> None:
    assert _telecare(empty_database_url, "db", "upgrade").returncode == 0
    made = _telecare(empty_database_url, "token", "create", "--role", "operator", "--name", "eve")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    with psycopg.connect(empty_database_url) as conn:
        row = conn.execute(
            "SELECT name, role FROM api_tokens WHERE token_hash = %s", [token_digest(token)]
        ).fetchone()
    assert row == ("eve", "operator")
    refused = _telecare(empty_database_url, "token", "create", "--role", "king", "--name", "x")
    assert refused.returncode != 0 and "king" in refused.stderr
