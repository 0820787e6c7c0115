"""Text PostgreSQL can store: no NUL (U+0000) character and no lone surrogate.

Both pass Python and JSON parsers and are refused only by the database (text and jsonb
columns reject U+0000; a lone surrogate cannot be encoded as UTF-8), which would turn input a
client can fix into a server error. They are refused at the edges instead, with the reason.
"""

from __future__ import annotations

from pydantic import AfterValidator


def storable_text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse `value`, or None."""
    if "\x00" in value:
        return NUL_FREE_PROBLEM
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


def _storable(value: str) -> str:
    problem = storable_text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Storable = AfterValidator(_storable)
"""Add to an `Annotated[str, ...]` field: refuses text the database cannot store."""

NUL_FREE = r"^[^\x00]*$"
"""The pattern (checked by pydantic's core, no Python call) for fields of device messages,
which are only ever read from JSON: their parser already refuses a lone surrogate, so only NUL
is left to refuse. `NUL_FREE_PROBLEM` says why."""
NUL_FREE_PROBLEM = "must not contain NUL (U+0000) characters"

__all__ = ["NUL_FREE", "NUL_FREE_PROBLEM", "Storable", "storable_text_problem"]
