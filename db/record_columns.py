"""A record's select list, made from the record's own fields.

A frozen dataclass read with `class_row` is the one declaration of what a query returns: its
select list names each field, in order, as a column of the query's main table, as a column of a
joined table (the field says which with `From`), or as a computed expression (given with the
query, by field name). A column added to the record is then read with no second list to keep in
step; a field that names no column fails at the first query rather than reading as missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

from psycopg import sql

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class From:
    """`Annotated` metadata of a field read from a joined table: the alias of that table."""

    alias: str


def _alias(hint: Any, default: str) -> str:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, From):
            return meta.alias
    return default


def select_list(
    record: type[DataclassInstance], *, table: str, computed: Mapping[str, str] | None = None
) -> sql.SQL:
    """`"table"."field"` for each field of `record` (the alias of its `From`, if it has one),
    `(expression) AS "field"` for the fields named in `computed` (constant SQL of the caller).

    Rendered once, here: a composed list would be rendered again by every query that runs it.
    """
    computed = computed or {}
    names = [field.name for field in dataclasses.fields(record)]
    unknown = computed.keys() - set(names)
    if unknown:
        raise ValueError(f"{record.__name__} has no field {', '.join(sorted(unknown))}")
    hints = get_type_hints(record, include_extras=True)
    columns = sql.SQL(", ").join(
        sql.SQL("({}) AS {}").format(sql.SQL(computed[name]), sql.Identifier(name))
        if name in computed
        else sql.Identifier(_alias(hints[name], table), name)
        for name in names
    )
    return sql.SQL(columns.as_string())


def history_of(history_table: str, key: str) -> str:
    """The computed `history` column of an alert or alarm (alias `a`): its history rows as a JSON
    list of {at, action, actor, note}, oldest first. Names are this code's constants."""
    return (
        sql.SQL(
            "coalesce((SELECT jsonb_agg(jsonb_build_object('at', h.at, 'action', h.action,"
            " 'actor', h.actor, 'note', h.note) ORDER BY h.at, h.id)"
            " FROM {} h WHERE h.{} = a.id), '[]'::jsonb)"
        )
        .format(sql.Identifier(history_table), sql.Identifier(key))
        .as_string()
    )
