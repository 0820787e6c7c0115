"""Data retention: telemetry kept TELECARE_HEARTBEAT_RETENTION_DAYS (90), alarms and alerts
TELECARE_RECORD_RETENTION_DAYS (2557, seven years) after they were resolved.

- **Telemetry** (`heartbeats`, `device_status_events`): on TimescaleDB whole chunks are dropped
  (`drop_chunks`: no row-by-row delete, no bloat); a chunk goes once all of it is older than the
  cutoff, so up to one chunk interval (7 days) more is kept. On plain PostgreSQL the old rows
  are deleted in batches. The change-event stream (`events`) is kept as long as telemetry.
- **Records** (`alarms`, `alerts` and their histories): only resolved ones, resolved before the
  cutoff. An alarm or alert nobody resolved is never removed, however old. The audit log is
  kept as long as the records it describes.

Every run that removes something writes an audit entry (`data.prune`) with the counts. The
service runs it daily (ingest role); `telecare db prune [--dry-run]` runs it by hand.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection, sql

from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.db import audit
from telecare.db.migrations.runner import is_hypertable
from telecare.db.pool import Pool

log = logging.getLogger(__name__)

TELEMETRY = ("heartbeats", "device_status_events")
_LOCK_KEY = 0x7E1EC4F  # one prune at a time, whichever process runs it
_DELETE_BATCH = 10_000


@dataclass(frozen=True)
class RetentionPolicy:
    heartbeat_days: int
    record_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.heartbeat_retention_days, settings.record_retention_days)


@dataclass(frozen=True)
class Removed:
    table: str
    rows: int
    chunks: int | None = None  # TimescaleDB chunks dropped; rows are then approximate

    def describe(self) -> str:
        if self.chunks is None:
            return f"{self.table}: {self.rows} rows"
        return f"{self.table}: {self.chunks} chunks (about {self.rows} rows)"


@dataclass(frozen=True)
class PruneReport:
    dry_run: bool
    telemetry_before: datetime
    records_before: datetime
    removed: list[Removed] = field(default_factory=list)
    skipped: str | None = None  # why nothing was done

    @property
    def total_rows(self) -> int:
        return sum(r.rows for r in self.removed)

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"prune skipped: {self.skipped}"]
        verb = "would remove" if self.dry_run else "removed"
        head = [
            f"telemetry received before {self.telemetry_before:%Y-%m-%d %H:%M} UTC,"
            f" resolved records before {self.records_before:%Y-%m-%d %H:%M} UTC: {verb}"
        ]
        return head + [f"  {r.describe()}" for r in self.removed]


async def prune(
    pool: Pool, policy: RetentionPolicy, *, dry_run: bool = False, actor: audit.Actor = audit.SYSTEM
) -> PruneReport:
    now = datetime.now(UTC)
    report = PruneReport(
        dry_run,
        telemetry_before=now - timedelta(days=policy.heartbeat_days),
        records_before=now - timedelta(days=policy.record_days),
    )
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        row = await cur.fetchone()
        if not row or not row[0]:
            return PruneReport(
                dry_run, report.telemetry_before, report.records_before, skipped="already running"
            )
        try:
            for table in TELEMETRY:
                report.removed.append(
                    await _telemetry(conn, table, report.telemetry_before, dry_run=dry_run)
                )
            report.removed.append(
                await _delete(conn, "events", "at < %s", report.telemetry_before, dry_run=dry_run)
            )
            report.removed.extend(await _records(conn, report.records_before, dry_run=dry_run))
            if not dry_run and report.total_rows:
                await audit.record(
                    conn,
                    actor,
                    action="data.prune",
                    target_type="data",
                    target_id=None,
                    details={r.table: r.rows for r in report.removed if r.rows},
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    return report


async def _telemetry(
    conn: AsyncConnection, table: str, before: datetime, *, dry_run: bool
) -> Removed:
    if not await is_hypertable(conn, table):
        return await _delete(conn, table, "received_at < %s", before, dry_run=dry_run)
    cur = await conn.execute(
        "SELECT count(*), coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint"
        " FROM show_chunks(%s::regclass, older_than => %s) AS chunk"
        " JOIN pg_class c ON c.oid = chunk",
        [table, before],
    )
    row = await cur.fetchone()
    assert row is not None
    chunks, rows = int(row[0]), int(row[1])
    if chunks and not dry_run:
        await conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)", [table, before])
    return Removed(table, rows, chunks)


async def _delete(
    conn: AsyncConnection, table: str, condition: str, before: datetime, *, dry_run: bool
) -> Removed:
    """Rows matching `condition` (one `%s`: the cutoff), counted or deleted in batches."""
    name, where = sql.Identifier(table), sql.SQL(condition)
    if dry_run:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(name, where), [before]
        )
        row = await cur.fetchone()
        return Removed(table, int(row[0]) if row else 0)
    removed = 0
    while True:
        cur = await conn.execute(
            sql.SQL(
                "DELETE FROM {name} WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM {name} WHERE {where} LIMIT %s))"
            ).format(name=name, where=where),
            [before, _DELETE_BATCH],
        )
        removed += cur.rowcount
        if cur.rowcount < _DELETE_BATCH:
            return Removed(table, removed)


# Resolved alarms and alerts before the cutoff, with their histories, in one transaction.
_RECORDS = {
    "alarms": """
        WITH old AS (SELECT id FROM alarms WHERE state = 'resolved' AND resolved_at < %(before)s),
        history AS (DELETE FROM alarm_history WHERE alarm_id IN (SELECT id FROM old))
        DELETE FROM alarms WHERE id IN (SELECT id FROM old)""",
    "alerts": """
        WITH old AS (SELECT id FROM alerts WHERE state = 'resolved' AND resolved_at < %(before)s),
        history AS (DELETE FROM alert_history WHERE alert_id IN (SELECT id FROM old)),
        ungrouped AS (UPDATE alerts SET group_id = NULL WHERE group_id IN (SELECT id FROM old)
                      AND id NOT IN (SELECT id FROM old))
        DELETE FROM alerts WHERE id IN (SELECT id FROM old)""",
}
_COUNT_RECORDS = "SELECT count(*) FROM {} WHERE state = 'resolved' AND resolved_at < %(before)s"


async def _records(conn: AsyncConnection, before: datetime, *, dry_run: bool) -> list[Removed]:
    removed = []
    async with conn.transaction():
        for table, statement in _RECORDS.items():
            if dry_run:
                query = sql.SQL(_COUNT_RECORDS).format(sql.Identifier(table))
                cur = await conn.execute(query, {"before": before})
                row = await cur.fetchone()
                removed.append(Removed(table, int(row[0]) if row else 0))
            else:
                cur = await conn.execute(statement.encode(), {"before": before})
                removed.append(Removed(table, cur.rowcount))
    removed.append(await _delete(conn, "audit_log", "at < %s", before, dry_run=dry_run))
    return removed


async def prune_daily(
    pool: Pool, policy: RetentionPolicy, metrics: Metrics, *, every_s: float
) -> None:
    """Prune now and then every `every_s`, until cancelled. The next run is scheduled before
    this one works, so a failed run never loses the next; each run logs what it removed."""
    loop_time = asyncio.get_running_loop().time
    next_at = loop_time()
    while True:
        await asyncio.sleep(max(0.0, next_at - loop_time()))
        next_at += every_s
        try:
            report = await prune(pool, policy)
        except Exception as exc:
            log.warning("retention run failed error=%s retry_in_s=%.0f", exc, every_s)
            continue
        for removed in report.removed:
            metrics.retention_removed.labels(removed.table).inc(removed.rows)
        metrics.retention_last_run.set_to_current_time()
        log.info(
            "retention run removed_rows=%d %s",
            report.total_rows,
            " ".join(f"{r.table}={r.rows}" for r in report.removed) or report.skipped or "",
        )
