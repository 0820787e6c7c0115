"""Operators acknowledge and resolve alerts and alarms, with a note; each action is recorded.

One transaction per action: the row is locked, the transition checked, the row changed, the
history and the audit log written. The `record_event` trigger announces the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from telecare.db import audit
from telecare.db.pool import Pool
from telecare.operator_queue.item_errors import InvalidTransition, ItemNotFound

Kind = Literal["alert", "alarm"]
Action = Literal["acknowledged", "resolved"]


@dataclass(frozen=True)
class _Tables:
    items: str
    history: str
    key: str


_TABLES: dict[Kind, _Tables] = {
    "alert": _Tables("alerts", "alert_history", "alert_id"),
    "alarm": _Tables("alarms", "alarm_history", "alarm_id"),
}

# Which states each action may start from.
_FROM: dict[Action, frozenset[str]] = {
    "acknowledged": frozenset({"open"}),
    "resolved": frozenset({"open", "acknowledged"}),
}

# Resolving also counts as taking the item, for whoever had not acknowledged it first.
_UPDATE: dict[Action, sql.SQL] = {
    "acknowledged": sql.SQL(
        "UPDATE {} SET state = 'acknowledged', acknowledged_at = now(),"
        " acknowledged_by = %(actor)s WHERE id = %(id)s"
    ),
    "resolved": sql.SQL(
        "UPDATE {} SET state = 'resolved', resolved_at = now(), resolved_by = %(actor)s,"
        " acknowledged_at = coalesce(acknowledged_at, now()),"
        " acknowledged_by = coalesce(acknowledged_by, %(actor)s) WHERE id = %(id)s"
    ),
}


async def act(
    pool: Pool, kind: Kind, item_id: int, action: Action, *, actor: audit.Actor, note: str | None
) -> None:
    """Apply `action` to alert or alarm `item_id`; ItemNotFound or InvalidTransition otherwise."""
    tables = _TABLES[kind]
    items = sql.Identifier(tables.items)
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            sql.SQL("SELECT state FROM {} WHERE id = %s FOR UPDATE").format(items), [item_id]
        )
        row = await cur.fetchone()
        if row is None:
            raise ItemNotFound(kind, item_id)
        state: str = row[0]
        if state not in _FROM[action]:
            raise InvalidTransition(kind, item_id, state, action)
        await conn.execute(
            _UPDATE[action].format(items),
            {"actor": actor.name, "id": item_id},
        )
        await conn.execute(
            sql.SQL("INSERT INTO {} ({}, action, actor, note) VALUES (%s, %s, %s, %s)").format(
                sql.Identifier(tables.history), sql.Identifier(tables.key)
            ),
            [item_id, action, actor.name, note],
        )
        await audit.record(
            conn,
            actor,
            action=f"{kind}.{action}",
            target_type=kind,
            target_id=str(item_id),
            details={"from_state": state, "with_note": note is not None},
        )
