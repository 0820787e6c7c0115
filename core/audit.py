"""The audit log: who changed what, when. Written in the same transaction as the change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import AsyncConnection


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
    await conn.execute(
        "INSERT INTO audit_log (actor, actor_role, token_id, action, target_type, target_id,"
        " details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            actor.name,
            actor.role,
            actor.token_id,
            action,
            target_type,
            target_id,
            json.dumps(dict(details or {}), default=str),
        ],
    )
