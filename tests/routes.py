"""Every route of the HTTP API, as `(method, path)`, from the app itself."""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from telecare.api.app import create_app
from telecare.api.context import ApiContext
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings

# FastAPI's own pages: the schema and its viewers.
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def app_for_inspection() -> FastAPI:
    """The app as the service builds it; building it touches no resource of the context."""
    nothing = cast(Any, None)
    return create_app(ApiContext(Settings(), nothing, Metrics(), readiness={}, events=nothing))


def all_routes(app: FastAPI | None = None) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for route in iter_route_contexts((app or app_for_inspection()).routes):
        if route.path is None or route.path in DOCUMENTATION:
            continue
        routes += [
            (method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"
        ]
    return routes
