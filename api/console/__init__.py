"""The operator console: static HTML, CSS and JavaScript served by the API itself.

No build step and nothing from outside: `/` answers the page, `/console/...` its assets. The
page's Content-Security-Policy allows scripts, styles and connections to this origin only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(str(resources.files("telecare.api.console") / "static"))

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def mount_console(app: FastAPI) -> None:
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/console", StaticFiles(directory=STATIC), name="console")
