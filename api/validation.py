"""422 answers shaped like FastAPI's own validation errors, for checks made by hand."""

from __future__ import annotations

from fastapi import HTTPException, status


def unprocessable(where: str, field: str | None, message: str) -> HTTPException:
    """422 naming the field (`where` is `body` or `query`), as request validation does."""
    loc = [where] if field is None else [where, field]
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": loc, "msg": message, "type": "value_error"}],
    )


def body_error(field: str | None, message: str) -> HTTPException:
    return unprocessable("body", field, message)
