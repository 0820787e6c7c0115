"""What waits in the operators' queue: unresolved alerts by severity, alarms not yet taken."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telecare.db.pool import Pool

SEVERITIES = ("critical", "high", "medium", "low")

_ALERTS = """
SELECT state, severity, count(*) FILTER (WHERE group_id IS NULL),
       count(*) FILTER (WHERE group_id IS NOT NULL)
FROM alerts WHERE state <> 'resolved' GROUP BY 1, 2
"""
_ALARMS = """
SELECT count(*) FILTER (WHERE state = 'open'),
       count(*) FILTER (WHERE state = 'open' AND severity = 'critical'),
       min(received_at) FILTER (WHERE state = 'open'),
       count(*) FILTER (WHERE state = 'acknowledged')
FROM alarms WHERE state <> 'resolved'
"""


@dataclass(frozen=True)
class AlertCounts:
    open: dict[str, int]  # queue rows (not grouped under an area alert) by severity
    acknowledged: dict[str, int]
    grouped: int  # unresolved alerts shown only through their area_outage


@dataclass(frozen=True)
class AlarmCounts:
    waiting: int  # received, no operator has taken them yet
    waiting_critical: int  # of those, life-safety events
    oldest_waiting_at: datetime | None
    in_hand: int  # acknowledged, not resolved yet


async def queue_counts(pool: Pool) -> tuple[AlertCounts, AlarmCounts]:
    async with pool.connection() as conn:
        cur = await conn.execute(_ALERTS)
        alert_rows = await cur.fetchall()
        cur = await conn.execute(_ALARMS)
        alarm_row = await cur.fetchone()
    per_state = {state: dict.fromkeys(SEVERITIES, 0) for state in ("open", "acknowledged")}
    grouped = 0
    for state, severity, top_level, under_area in alert_rows:
        per_state[state][severity] = top_level
        grouped += under_area
    assert alarm_row is not None
    return AlertCounts(per_state["open"], per_state["acknowledged"], grouped), AlarmCounts(
        *alarm_row
    )
