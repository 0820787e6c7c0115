"""The audit log: who changed what, when. Written in the same transaction as the change."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from telecare.db.pool import Pool


@dataclass(frozen=True)
class Actor:
    """Whoever asked for a change: an API token's holder, or `system`/`cli` for the service."""

    name: str
    role: str | None = None
    token_id: int | None = None


SYSTEM = Actor("system")
CLI = Actor("cli", role="admin")


async def record(
    conn: AsyncConnection,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    target_id: str | None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Add one audit entry; call it inside the transaction that makes the change.

    `details` must name what changed, not copy personal data (resident, address) into it.
    """
    await record_many(
        conn, actor, action=action, target_type=target_type, entries=[(target_id, details)]
    )


async def record_many(
    conn: AsyncConnection,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    entries: Sequence[tuple[str | None, Mapping[str, object] | None]],
) -> None:
    """One entry per (target_id, details), sent in one pipeline (e.g. a bulk import)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO audit_log (actor, actor_role, token_id, action, target_type, target_id,"
            " details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    actor.name,
                    actor.role,
                    actor.token_id,
                    action,
                    target_type,
                    target_id,
                    json.dumps(dict(details or {}), default=str),
                )
                for target_id, details in entries
            ],
        )


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    actor_role: str | None
    token_id: int | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


_SELECT = """
SELECT id, at, actor, actor_role, token_id, action, target_type, target_id, details
FROM audit_log
WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
  AND (%(actor)s::text IS NULL OR actor = %(actor)s)
  AND (%(action)s::text IS NULL OR action = %(action)s)
  AND (%(target_type)s::text IS NULL OR target_type = %(target_type)s)
  AND (%(target_id)s::text IS NULL OR target_id = %(target_id)s)
  AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


async def list_entries(
    pool: Pool,
    *,
    limit: int,
    before_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
) -> list[AuditEntry]:
    """Entries newest first, before the cursor `before_id`."""
    params = {
        "before": before_id,
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "since": since,
        "limit": limit,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        await cur.execute(_SELECT, params)
        return await cur.fetchall()
