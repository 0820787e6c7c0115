"""`telecare contract export`: the machine-readable contract (docs/PROTOCOL.md) as files.

The device side comes from protocol/contract.py, the HTTP side from the FastAPI app's own
OpenAPI document. Every file is written the same way (sorted keys, indent 2, a final newline),
so regenerating an unchanged contract changes no byte and a diff is always a real change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from telecare.api.app import create_app
from telecare.api.context import ApiContext
from telecare.core.metrics import Metrics
from telecare.core.settings import Settings
from telecare.protocol.contract import contract_documents

DEFAULT_OUT = Path("docs/schema")
OPENAPI_FILE = "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The HTTP API's OpenAPI document, with no database or broker: building the app touches
    none of its context's resources, and the settings are the defaults, whatever the
    environment says, so the document is the same on every machine."""
    nothing = cast(Any, None)
    settings = Settings.model_construct()
    app = create_app(ApiContext(settings, nothing, Metrics(), readiness={}, events=nothing))
    return app.openapi()


def documents() -> dict[str, dict[str, Any]]:
    """File name -> document, for every file of the contract."""
    return {**contract_documents(), OPENAPI_FILE: openapi_document()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out: Path) -> dict[str, bool]:
    """Write every file into `out`; file name -> whether its content changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = {}
    for name, document in sorted(documents().items()):
        path = out / name
        text = render(document).encode("utf-8")
        changed[name] = not path.is_file() or path.read_bytes() != text
        if changed[name]:
            path.write_bytes(text)
    return changed


def run_export(out: Path) -> int:
    changed = export(out)
    for name, was_changed in changed.items():
        print(f"{'written  ' if was_changed else 'unchanged'} {out / name}")
    return 0
