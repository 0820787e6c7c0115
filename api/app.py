"""The FastAPI application: routes under /api/v1, health and metrics at the root."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from telecare.api.auth_limit import FailedAuthLimiter
from telecare.api.body_limit import BodyLimit
from telecare.api.console import mount_console
from telecare.api.context import ApiContext
from telecare.api.error_responses import install_error_handlers
from telecare.api.list_cache import ListCache
from telecare.api.routes import (
    alarms,
    alerts,
    audit,
    device_import,
    devices,
    events,
    health,
    heartbeats,
    migration,
    quarantine,
    rules,
    session,
    stats,
    tokens,
)
from telecare.api.validation import refuse_unstorable_text

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 6 * 1024 * 1024


def create_app(context: ApiContext) -> FastAPI:
    """The app serves a context whose resources (pool, broker) the caller owns."""
    # A JSON body is a few hundred bytes; a CSV import at most 5 MB (it answers 413 itself
    # beyond, with the limits). Anything larger is refused before it is read into memory.
    app = FastAPI(title="Telecare monitoring API", version="1")
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.state.context = context
    app.state.database_probes = health.DatabaseProbes(context.pool)
    app.state.lists = ListCache(context.events)
    app.state.fleet_stats = stats.shared_fleet_stats(context)
    app.state.auth_limiter = FailedAuthLimiter(
        burst=context.settings.auth_failures_burst,
        per_minute=context.settings.auth_failures_per_minute,
    )
    install_error_handlers(app)
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Depends(refuse_unstorable_text)])
    routers = (
        device_import,
        devices,
        heartbeats,
        migration,
        alerts,
        alarms,
        events,
        quarantine,
        rules,
        stats,
        session,
        tokens,
        audit,
    )
    for module in routers:
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(health.router)
    mount_console(app)
    return app


def create_operations_app(context: ApiContext) -> FastAPI:
    """/healthz and /metrics alone: what a process without the API role serves, so that every
    process of a split deployment (`telecare run --only ingest,alerts`) can be watched."""
    app = FastAPI(title="Telecare monitoring process", version="1", openapi_url=None)
    app.state.context = context
    app.state.database_probes = health.DatabaseProbes(context.pool)
    install_error_handlers(app)
    app.include_router(health.router)
    return app
