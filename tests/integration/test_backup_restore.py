"""The backup and restore procedure of docs/OPERATIONS.md, run for real: pg_dump a database with
TimescaleDB, restore it into a new one between timescaledb_pre_restore() and
timescaledb_post_restore(), and find every row and every hypertable chunk again."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import psycopg

from telecare.db.migrations.runner import HYPERTABLES, upgrade
from tests.conftest import ADMIN_URL
from tests.databases import create_database, drop_database
from tests.postgres import PG_BIN

_TABLES = """
SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename
"""


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(_TABLES).fetchall()]
        counts = {
            table: conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in tables
        }
        for table in HYPERTABLES:
            row = conn.execute("SELECT count(*) FROM show_chunks(%s::regclass)", [table]).fetchone()
            counts[f"{table} chunks"] = row[0] if row else 0
    return counts


def test_a_dump_restores_into_a_new_database_with_every_row(
    seeded_database: str, tmp_path: Path
) -> None:
    source = seeded_database
    dump = tmp_path / "telecare.dump"
    subprocess.run(
        [PG_BIN / "pg_dump", "--format=custom", f"--file={dump}", f"--dbname={source}"],
        check=True,
        capture_output=True,
    )
    target = create_database(ADMIN_URL)
    try:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
        subprocess.run(
            [PG_BIN / "pg_restore", "--no-owner", f"--dbname={target}", dump],
            check=True,
            capture_output=True,
        )
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("SELECT timescaledb_post_restore()")
        assert _counts(target) == _counts(source)
        assert _counts(source)["heartbeats chunks"] >= 3, "the dump covered several chunks"
        asyncio.run(_writable_and_current(target))
    finally:
        drop_database(ADMIN_URL, target)


async def _writable_and_current(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert (await upgrade(conn)).applied == [], "the schema version came back too"
        await conn.execute(
            "INSERT INTO heartbeats (received_at, device_id, msg_id, device_ts, seq, interval_s,"
            " power, network) VALUES (now(), 'ret-1', 'after', now(), 9, 60, 'mains', '4g')"
        )
