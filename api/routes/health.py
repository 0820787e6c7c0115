"""Readiness and Prometheus metrics: both answer within seconds even while the database hangs."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from telecare.api.deps import ContextDep
from telecare.api.probe import Probe
from telecare.db.pool import Pool

router = APIRouter(tags=["health"])

_DATABASE_CHECK_S = 2.0


async def _select_one(pool: Pool) -> bool:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
    return True


async def _open_alerts(pool: Pool) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY type"
        )
        return dict(await cur.fetchall())


class DatabaseProbes:
    """What /healthz and /metrics ask the database, each at most one query at a time."""

    def __init__(self, pool: Pool) -> None:
        self.alive = Probe(
            functools.partial(_select_one, pool), name="database", within_s=_DATABASE_CHECK_S
        )
        self.open_alerts = Probe(
            functools.partial(_open_alerts, pool), name="open_alerts", within_s=_DATABASE_CHECK_S
        )


async def _probes(request: Request) -> DatabaseProbes:
    probes: DatabaseProbes = request.app.state.database_probes
    return probes


ProbesDep = Annotated[DatabaseProbes, Depends(_probes)]


@router.get("/healthz")
async def healthz(context: ContextDep, probes: ProbesDep, response: Response) -> dict[str, object]:
    checks: dict[str, bool] = {}
    try:
        checks["database"] = await probes.alive.ask()
    except Exception:
        checks["database"] = False
    for name, check in context.readiness.items():
        checks[name] = check()
    ready = all(checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ok" if ready else "unavailable", "checks": checks}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(context: ContextDep, probes: ProbesDep) -> Response:
    try:
        open_alerts = await probes.open_alerts.ask()
        context.metrics.alerts_open.clear()
        for alert_type, count in open_alerts.items():
            context.metrics.alerts_open.labels(alert_type).set(count)
    except Exception:  # the counters are still worth serving while the database is away
        context.metrics.db_write_failures.labels("metrics_query").inc()
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")
