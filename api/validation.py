"""422 answers shaped like FastAPI's own validation errors, for checks made by hand; the
types and checks every route shares (ids the database can hold, text it can store)."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Request, status

from telecare.core.text import storable_text_problem

MAX_BIGINT = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="the record's id")]


def unprocessable(where: str, field: str | None, message: str) -> HTTPException:
    """422 naming the field (`where` is `body` or `query`), as request validation does."""
    loc = [where] if field is None else [where, field]
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": loc, "msg": message, "type": "value_error"}],
    )


def body_error(field: str | None, message: str) -> HTTPException:
    return unprocessable("body", field, message)


async def refuse_unstorable_text(request: Request) -> None:
    """A path or query value with a NUL character (or invalid Unicode) is 422, not a 500 from
    the database it would be compared with."""
    for where, items in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in items:
            problem = storable_text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise unprocessable(where, name, f"{name} {problem}")
