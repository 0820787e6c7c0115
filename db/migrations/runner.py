"""Versioned schema migrations: numbered .sql files applied once each, in order."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection, sql

log = logging.getLogger(__name__)

# Tables that become TimescaleDB hypertables (time column) when the extension is available.
HYPERTABLES = {"heartbeats": "received_at", "device_status_events": "received_at"}
# Serialises concurrent `db upgrade` runs (several processes starting at once).
_LOCK_KEY = 0x7E1EC4E


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("telecare.db.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


@dataclass(frozen=True)
class UpgradeResult:
    applied: list[int]
    timescaledb: bool


async def upgrade(conn: AsyncConnection) -> UpgradeResult:
    """Bring the schema up to date; safe to run again and from several processes at once."""
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        applied = []
        for migration in available_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
            log.info("migration applied version=%d name=%s", migration.version, migration.name)
            applied.append(migration.version)
        timescale = await _enable_timescaledb(conn)
        return UpgradeResult(applied, timescale)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


async def _enable_timescaledb(conn: AsyncConnection) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if await cur.fetchone() is None:
        log.warning(
            "timescaledb extension not available: telemetry stays in plain PostgreSQL tables"
        )
        return False
    cur = await conn.execute("SELECT current_setting('shared_preload_libraries')")
    row = await cur.fetchone()
    if row is None or "timescaledb" not in row[0]:
        # CREATE EXTENSION would end the session with FATAL, not just fail.
        log.warning(
            "timescaledb is installed but not in shared_preload_libraries: telemetry stays in"
            " plain PostgreSQL tables"
        )
        return False
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except Exception as exc:  # e.g. not in shared_preload_libraries
        log.warning("timescaledb could not be enabled (%s): using plain tables", exc)
        return False
    for table, time_column in HYPERTABLES.items():
        await conn.execute(
            "SELECT create_hypertable(%s::regclass, %s, if_not_exists => true,"
            " migrate_data => true)",
            [table, time_column],
        )
    # Heartbeats are read by device and time (heartbeats_device_time) and expire by whole
    # chunks: an index on time alone would only cost every insert an index entry and disk
    # (BENCHMARKS.md). Plain PostgreSQL keeps it, for its retention deletes by time.
    await conn.execute("DROP INDEX IF EXISTS heartbeats_received_at_idx")
    return True


async def is_hypertable(conn: AsyncConnection, table: str) -> bool:
    cur = await conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return False
    cur = await conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [table]
    )
    return await cur.fetchone() is not None
