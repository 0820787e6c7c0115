"""Cursor pagination: `{"items": [...], "next": <cursor or null>}`.

A route asks its query for `limit + 1` rows after the cursor; `page()` keeps `limit` of them and
makes the next cursor from the last one kept, only when there was more.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel

from telecare.api.validation import unprocessable

T = TypeVar("T")
R = TypeVar("R")

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size (at most 1000)")]
CursorQuery = Annotated[str | None, Query(description="`next` of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None


def _bad_cursor() -> HTTPException:
    return unprocessable("query", "cursor", "not a cursor returned by this API")


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise _bad_cursor() from None


def decode_id_cursor(cursor: str | None) -> int | None:
    """A cursor over rows ordered by a bigint id (newest first)."""
    value = decode_cursor(cursor)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise _bad_cursor()
    return int(value)


def page(
    rows: Sequence[R], limit: int, *, item: Callable[[R], T], key: Callable[[R], object]
) -> Page[T]:
    """The page of `limit` items from `limit + 1` fetched rows; `key` makes the cursor."""
    kept = rows[:limit]
    more = len(rows) > limit
    return Page(
        items=[item(r) for r in kept], next=encode_cursor(str(key(kept[-1]))) if more else None
    )
