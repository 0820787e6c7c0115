"""Cursor pagination: `{"items": [...], "next": <cursor or null>}`."""

from __future__ import annotations

import base64
from typing import Annotated, Generic, TypeVar

from fastapi import HTTPException, Query, status
from pydantic import BaseModel

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size (at most 1000)")]
CursorQuery = Annotated[str | None, Query(description="`next` of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            [{"loc": ["query", "cursor"], "msg": "not a cursor returned by this API"}],
        ) from None
