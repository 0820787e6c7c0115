"""Readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(context: ContextDep, response: Response) -> dict[str, object]:
    checks: dict[str, bool] = {}
    try:
        async with context.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        checks["database"] = True
    except Exception:
        checks["database"] = False
    for name, check in context.readiness.items():
        checks[name] = check()
    ready = all(checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ok" if ready else "unavailable", "checks": checks}


@router.get("/metrics")
async def metrics(context: ContextDep) -> Response:
    try:
        async with context.pool.connection(timeout=2) as conn:
            cur = await conn.execute(
                "SELECT type, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY type"
            )
            open_alerts: dict[str, int] = dict(await cur.fetchall())
        context.metrics.alerts_open.clear()
        for alert_type, count in open_alerts.items():
            context.metrics.alerts_open.labels(alert_type).set(count)
    except Exception:  # the counters are still worth serving while the database is away
        context.metrics.db_write_failures.labels("metrics_query").inc()
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")
