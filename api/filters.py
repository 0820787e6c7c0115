"""Query parameters several lists share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime

SinceQuery = Annotated[
    AwareDatetime | None,
    Query(description="only items from this time on (RFC 3339 with a zone)"),
]

__all__ = ["SinceQuery"]
