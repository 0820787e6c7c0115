"""Answer times: how soon operators took each alarm, against the industry targets.

An alarm's answer time is from its receipt by the backend (`received_at`) to the first
operator action on it (`acknowledged_at`; resolving an alarm nobody acknowledged sets it).
Targets (TSA / TEC Quality Standards Framework): 97.5% of alarms within 60 s, 99% within 180 s.

An alarm still unanswered counts against a target as soon as it has waited longer than the
target's limit (it can no longer meet it) and is left out of that target until then, so a
queue of waiting alarms never flatters the figures. Technical events (docs/ALERTS.md) are left
out unless asked for: nobody is asking for help. Days are local days of `tz`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from telecare.db.pool import Pool
from telecare.protocol.messages import TECHNICAL_EVENTS

TARGETS: tuple[tuple[int, float], ...] = ((60, 0.975), (180, 0.99))

_FIGURES = """
WITH taken AS (
    SELECT (received_at AT TIME ZONE %(tz)s)::date AS day,
           acknowledged_by AS operator,
           extract(epoch FROM acknowledged_at - received_at)::float8 AS answer_s,
           extract(epoch FROM now() - received_at)::float8 AS waited_s
    FROM alarms
    WHERE received_at >= (%(first)s::date)::timestamp AT TIME ZONE %(tz)s
      AND received_at < (%(last)s::date + 1)::timestamp AT TIME ZONE %(tz)s
      AND (%(technical)s OR event <> ALL (%(technical_events)s))
)
SELECT GROUPING(day) AS all_days, GROUPING(operator) AS all_operators, day, operator,
       count(*), count(answer_s),
       count(*) FILTER (WHERE answer_s <= %(t1)s),
       count(*) FILTER (WHERE answer_s IS NOT NULL OR waited_s > %(t1)s),
       count(*) FILTER (WHERE answer_s <= %(t2)s),
       count(*) FILTER (WHERE answer_s IS NOT NULL OR waited_s > %(t2)s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY answer_s),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY answer_s),
       max(answer_s)
FROM taken
GROUP BY GROUPING SETS ((day, operator), (day), (operator), ())
"""


@dataclass(frozen=True)
class TargetFigure:
    within_s: int
    target: float  # the share to reach, e.g. 0.975
    counted: int  # alarms answered, or waiting longer than within_s
    met: int  # answered within within_s
    share: float | None  # met / counted; null when nothing counted yet
    on_target: bool | None


@dataclass(frozen=True)
class Figures:
    alarms: int
    answered: int
    waiting: int  # not answered yet
    median_s: float | None
    p95_s: float | None
    max_s: float | None
    targets: list[TargetFigure]


@dataclass(frozen=True)
class OperatorFigures:
    operator: str
    figures: Figures


@dataclass(frozen=True)
class DayFigures:
    day: date
    figures: Figures
    operators: list[OperatorFigures]


@dataclass(frozen=True)
class AnswerTimes:
    first_day: date
    last_day: date
    tz: str
    include_technical: bool
    total: Figures
    operators: list[OperatorFigures]  # over the whole range, by name
    days: list[DayFigures]  # every day of the range, oldest first


def _figures(row: tuple[Any, ...] | None) -> Figures:
    alarms, answered, met1, counted1, met2, counted2, median, p95, slowest = (
        row[4:] if row else (0, 0, 0, 0, 0, 0, None, None, None)
    )
    counts = ((met1, counted1), (met2, counted2))
    targets = []
    for (within_s, target), (met, counted) in zip(TARGETS, counts, strict=True):
        share = met / counted if counted else None
        on_target = None if share is None else share >= target
        targets.append(TargetFigure(within_s, target, counted, met, share, on_target))
    return Figures(alarms, answered, alarms - answered, median, p95, slowest, targets)


async def answer_times(
    pool: Pool, *, first_day: date, last_day: date, tz: str, include_technical: bool = False
) -> AnswerTimes:
    """Figures per day and operator for the local days `first_day`..`last_day` of `tz`."""
    params = {
        "tz": tz,
        "first": first_day,
        "last": last_day,
        "technical": include_technical,
        "technical_events": sorted(e.value for e in TECHNICAL_EVENTS),
        "t1": TARGETS[0][0],
        "t2": TARGETS[1][0],
    }
    async with pool.connection() as conn:
        cur = await conn.execute(_FIGURES, params)
        rows = await cur.fetchall()
    total = next((r for r in rows if r[0] and r[1]), None)
    per_day = {r[2]: r for r in rows if not r[0] and r[1]}
    per_operator = sorted(
        (r for r in rows if r[0] and not r[1] and r[3] is not None), key=lambda r: r[3]
    )
    per_day_operator: dict[date, list[tuple[Any, ...]]] = {}
    for r in sorted((r for r in rows if not r[0] and not r[1] and r[3] is not None), key=_name):
        per_day_operator.setdefault(r[2], []).append(r)
    days = []
    day = first_day
    while day <= last_day:
        operators = [OperatorFigures(r[3], _figures(r)) for r in per_day_operator.get(day, [])]
        days.append(DayFigures(day, _figures(per_day.get(day)), operators))
        day += timedelta(days=1)
    return AnswerTimes(
        first_day,
        last_day,
        tz,
        include_technical,
        _figures(total),
        [OperatorFigures(r[3], _figures(r)) for r in per_operator],
        days,
    )


def _name(row: tuple[Any, ...]) -> str:
    return str(row[3])
