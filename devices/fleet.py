"""The fleet at a glance: active devices by live status and by migration stage."""

from __future__ import annotations

from dataclasses import dataclass

from telecare.db.pool import Pool
from telecare.devices.migration import STAGES
from telecare.devices.records import DEVICE_FROM, STATUS_SQL

STATUSES = ("online", "overdue", "offline", "never_seen")

_COUNTS = f"""
SELECT ({STATUS_SQL}) AS status, d.migration_stage, count(*)
FROM {DEVICE_FROM}
WHERE d.decommissioned_at IS NULL
GROUP BY 1, 2
"""  # noqa: S608 - constant SQL


@dataclass(frozen=True)
class FleetCounts:
    total: int  # active devices (decommissioned ones are left out)
    by_status: dict[str, int]
    by_stage: dict[str, int]
    decommissioned: int


async def fleet_counts(pool: Pool) -> FleetCounts:
    async with pool.connection() as conn:
        cur = await conn.execute(_COUNTS)
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT count(*) FROM devices WHERE decommissioned_at IS NOT NULL")
        gone = await cur.fetchone()
    by_status = dict.fromkeys(STATUSES, 0)
    by_stage = dict.fromkeys(STAGES, 0)
    for status, stage, count in rows:
        by_status[status] += count
        by_stage[stage] += count
    return FleetCounts(
        total=sum(by_status.values()),
        by_status=by_status,
        by_stage=by_stage,
        decommissioned=gone[0] if gone else 0,
    )
