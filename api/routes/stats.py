"""/api/v1/stats: the fleet at a glance and operators' answer times against the targets."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request

from telecare.alarms.answer_times import AnswerTimes, answer_times
from telecare.api.context import ApiContext
from telecare.api.deps import AnyRole, PoolDep
from telecare.api.recent import Recent
from telecare.api.validation import unprocessable
from telecare.db.pool import Pool
from telecare.devices.fleet import FleetCounts, fleet_counts
from telecare.operator_queue.stats import AlarmCounts, AlertCounts, queue_counts

router = APIRouter(prefix="/stats", tags=["stats"])

DEFAULT_TZ = "Europe/London"
MAX_DAYS = 366


@dataclass(frozen=True)
class FleetStats:
    generated_at: datetime
    devices: FleetCounts
    alerts: AlertCounts
    alarms: AlarmCounts


async def compute_fleet_stats(pool: Pool) -> FleetStats:
    generated_at = datetime.now(UTC)
    devices = await fleet_counts(pool)
    alerts, alarms = await queue_counts(pool)
    return FleetStats(generated_at, devices, alerts, alarms)


def shared_fleet_stats(context: ApiContext) -> Recent[FleetStats]:
    """The figures every caller shares (made with the app; the service counts them once at
    start, so the first console need not wait for a count of the whole fleet)."""
    return Recent(
        functools.partial(compute_fleet_stats, context.pool),
        max_age_s=context.settings.fleet_stats_max_age_s,
    )


async def _recent_fleet_stats(request: Request) -> Recent[FleetStats]:
    recent: Recent[FleetStats] = request.app.state.fleet_stats
    return recent


@router.get("/fleet")
async def fleet(
    recent: Annotated[Recent[FleetStats], Depends(_recent_fleet_stats)], _: AnyRole
) -> FleetStats:
    """Devices by live status and migration stage; the queue: unresolved alerts by severity
    (area-grouped ones apart) and alarms waiting for an operator. Counting a large fleet takes
    a while, so the figures are shared by every caller for TELECARE_FLEET_STATS_MAX_AGE_S
    (5 s): `generated_at` says when they were counted."""
    return await recent.get()


@router.get("/answer-times")
async def answer_time_figures(
    pool: PoolDep,
    _: AnyRole,
    from_: Annotated[
        date | None, Query(alias="from", description="first local day (default: 6 days ago)")
    ] = None,
    to: Annotated[date | None, Query(description="last local day (default: today)")] = None,
    tz: Annotated[str, Query(description="IANA time zone of the days")] = DEFAULT_TZ,
    include_technical: Annotated[
        bool, Query(description="count technical events (battery_low, test, ...) too")
    ] = False,
) -> AnswerTimes:
    """Per day and operator: the share of alarms answered within 60 s and 180 s, against the
    targets 97.5% and 99% (docs/CONSOLE.md has the definitions)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise unprocessable("query", "tz", f"unknown time zone {tz!r}") from None
    last_day = to or datetime.now(zone).date()
    first_day = from_ or last_day - timedelta(days=6)
    if first_day > last_day:
        raise unprocessable("query", "from", "must not be after `to`")
    if (last_day - first_day).days >= MAX_DAYS:
        raise unprocessable("query", "from", f"at most {MAX_DAYS} days at once")
    return await answer_times(
        pool, first_day=first_day, last_day=last_day, tz=tz, include_technical=include_technical
    )
