"""The FastAPI application: routes under /api/v1, health and metrics at the root."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api.context import ApiContext
from api.routes import alarms, alerts, devices, health, quarantine, rules

API_PREFIX = "/api/v1"


def create_app(context: ApiContext) -> FastAPI:
    """The app serves a context whose resources (pool, broker) the caller owns."""
    app = FastAPI(title="Telecare monitoring API", version="1")
    app.state.context = context
    v1 = APIRouter(prefix=API_PREFIX)
    for module in (devices, alerts, alarms, quarantine, rules):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(health.router)
    return app
