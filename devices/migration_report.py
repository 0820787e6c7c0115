"""The migration report: where the switchover stands per district, and who is at risk now.

At risk: an active device in `in_progress` or `verifying` with no heartbeat received since it
entered that stage. It is the device whose home may have no working alarm path right now.
Decommissioned devices are left out; devices without a postcode count under district None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telecare.db.pool import Pool
from telecare.devices.migration import STAGES

_COUNTS = """
SELECT postcode_district, migration_stage, count(*) FROM devices
WHERE decommissioned_at IS NULL
  AND (%(district)s::text IS NULL OR postcode_district = upper(%(district)s))
GROUP BY postcode_district, migration_stage
"""
# One row at least: the total, with the (limited) list beside it (none when the limit is 0).
_AT_RISK = """
WITH risky AS (
    SELECT d.device_id, d.postcode_district, d.migration_stage, d.stage_changed_at,
           s.last_heartbeat_at, floor(extract(epoch FROM now() - d.stage_changed_at))::bigint
           AS at_risk_s
    FROM devices d LEFT JOIN device_state s USING (device_id)
    WHERE d.decommissioned_at IS NULL
      AND d.migration_stage IN ('in_progress', 'verifying')
      AND (s.last_heartbeat_at IS NULL OR s.last_heartbeat_at < d.stage_changed_at)
      AND (%(district)s::text IS NULL OR d.postcode_district = upper(%(district)s))
)
SELECT listed.*, total.n
FROM (SELECT count(*) AS n FROM risky) AS total
LEFT JOIN LATERAL (
    SELECT * FROM risky ORDER BY stage_changed_at, device_id LIMIT %(limit)s
) AS listed ON true
"""


@dataclass(frozen=True)
class DistrictCounts:
    postcode_district: str | None
    total: int
    counts: dict[str, int]


@dataclass(frozen=True)
class AtRisk:
    device_id: str
    postcode_district: str | None
    migration_stage: str
    stage_changed_at: datetime
    last_heartbeat_at: datetime | None
    at_risk_s: int


@dataclass(frozen=True)
class MigrationReport:
    generated_at: datetime
    stages: tuple[str, ...]
    totals: dict[str, int]
    districts: list[DistrictCounts]
    at_risk: list[AtRisk]  # longest at risk first, at most `at_risk_limit`
    at_risk_total: int


async def migration_report(
    pool: Pool, *, postcode_district: str | None = None, at_risk_limit: int = 1000
) -> MigrationReport:
    params = {"district": postcode_district, "limit": at_risk_limit}
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT now()")
        now_row = await cur.fetchone()
        assert now_row is not None
        cur = await conn.execute(_COUNTS, params)
        counted = await cur.fetchall()
        cur = await conn.execute(_AT_RISK, params)
        risky = await cur.fetchall()
    per_district: dict[str | None, dict[str, int]] = {}
    for district, stage, count in counted:
        per_district.setdefault(district, dict.fromkeys(STAGES, 0))[stage] = count
    totals = dict.fromkeys(STAGES, 0)
    for counts in per_district.values():
        for stage, count in counts.items():
            totals[stage] += count
    ordered = sorted(per_district.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return MigrationReport(
        generated_at=now_row[0],
        stages=STAGES,
        totals=totals,
        districts=[DistrictCounts(d, sum(c.values()), c) for d, c in ordered],
        at_risk=[AtRisk(*row[:6]) for row in risky if row[0] is not None],
        at_risk_total=risky[0][6],
    )
