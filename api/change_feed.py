"""Change events as the event stream sends them: read from the `events` table or a NOTIFY,
each with the changed alert or alarm as the API shows it now.

Event ids are handed out in commit order (migration 0005): when event N can be read, every
lower id is committed or will never exist, so "everything after N" is a complete answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telecare.api.items import load_public
from telecare.core.events import ChangeEvent, EventKind
from telecare.db.pool import Pool

_AFTER = """
SELECT id, kind, entity_id, action, device_id, state FROM events WHERE id > %s ORDER BY id
LIMIT %s
"""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    kind: EventKind
    data: str  # the JSON of the SSE `data:` line, encoded once for every client


async def changes_after(pool: Pool, after: int, *, limit: int) -> list[ChangeEvent]:
    """The rows of `events` after `after`, as the NOTIFY of each announced it."""
    async with pool.connection() as conn:
        cur = await conn.execute(_AFTER, [after, limit])
        return [ChangeEvent(*row) for row in await cur.fetchall()]


async def last_event_id(pool: Pool) -> int:
    """The newest event id (0 before the first event)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(id), 0) FROM events")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def count_after(pool: Pool, after: int, *, up_to: int) -> int:
    """How many events follow `after`, counting no further than `up_to`."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE id > %s LIMIT %s) AS e",
            [after, up_to],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def with_items(pool: Pool, changes: Sequence[ChangeEvent]) -> list[StreamEvent]:
    """The changes in order, each with its alert or alarm (two queries whatever the count)."""
    items: dict[EventKind, dict[int, Any]] = {
        kind: await load_public(pool, kind, {c.entity_id for c in changes if c.kind == kind})
        for kind in ("alert", "alarm")
    }
    events = []
    for change in changes:
        item = items[change.kind].get(change.entity_id)
        if item is None:  # rows are never deleted; nothing to show if one were
            continue
        data = {
            "event_id": change.id,
            "kind": change.kind,
            "action": change.action,
            "state": change.state,
            "item": item,
        }
        events.append(StreamEvent(change.id, change.kind, json.dumps(data, separators=(",", ":"))))
    return events
