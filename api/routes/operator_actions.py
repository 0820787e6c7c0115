"""What the alert and alarm queues share: a page of the list, and reading one, acknowledging and
resolving it (the same routes for alerts and for alarms)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel

from telecare.api.context import ApiContext
from telecare.api.deps import AnyRole, ContextDep, OperatorRole, PoolDep, json_response
from telecare.api.list_cache import ListCache
from telecare.api.pagination import decode_id_cursor, page
from telecare.api.schemas import Note
from telecare.api.validation import RowId
from telecare.db.pool import Pool
from telecare.operator_queue.actions import Action, Kind, act
from telecare.operator_queue.item_errors import InvalidTransition, ItemNotFound

R = TypeVar("R")


class _Row(Protocol):
    @property
    def id(self) -> int: ...


Q = TypeVar("Q", bound=_Row)


async def list_page(
    request: Request,
    lists: ListCache,
    kind: Kind,
    *,
    limit: int,
    cursor: str | None,
    fetch: Callable[[int, int | None], Awaitable[Sequence[Q]]],
    public: Callable[[Q], object],
) -> Response:
    """A page of the queue, newest first: `fetch(limit + 1, before_id)` gives the rows. The
    answer is kept by the list cache until an item of `kind` changes (api/list_cache.py)."""
    before_id = decode_id_cursor(cursor)  # a bad cursor: 422 before anything else

    async def compute() -> bytes:
        rows = await fetch(limit + 1, before_id)
        return page(rows, limit, item=public, key=lambda r: r.id).model_dump_json().encode()

    return json_response(await lists.answer(kind, request.url.query, compute))


class ActionBody(BaseModel):
    note: Note | None = None


def add_item_routes(
    router: APIRouter,
    kind: Kind,
    *,
    get: Callable[[Pool, int], Awaitable[R]],
    public: Callable[[R], object],
    response_model: type[object],
) -> None:
    """`GET /{id}`, `POST /{id}/ack` and `POST /{id}/resolve` on `router` (404, 409 answered)."""

    async def read_one(pool: Pool, item_id: int) -> object:
        try:
            return public(await get(pool, item_id))
        except ItemNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc

    async def apply(
        context: ApiContext,
        item_id: int,
        action: Action,
        actor: OperatorRole,
        body: ActionBody | None,
    ) -> object:
        pool = context.pool
        try:
            await act(
                pool, kind, item_id, action, actor=actor.actor, note=body.note if body else None
            )
        except ItemNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except InvalidTransition as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        context.events.changed(kind)  # this caller's next list shows it, notified or not yet
        return await read_one(pool, item_id)

    async def read(item_id: RowId, pool: PoolDep, _: AnyRole) -> Any:
        return await read_one(pool, item_id)

    async def acknowledge(
        item_id: RowId, context: ContextDep, principal: OperatorRole, body: ActionBody | None = None
    ) -> Any:
        return await apply(context, item_id, "acknowledged", principal, body)

    async def resolve(
        item_id: RowId, context: ContextDep, principal: OperatorRole, body: ActionBody | None = None
    ) -> Any:
        return await apply(context, item_id, "resolved", principal, body)

    routes = (
        ("/{item_id}", read, "GET", f"Read one {kind}"),
        ("/{item_id}/ack", acknowledge, "POST", f"An operator takes the {kind} (who and when)"),
        ("/{item_id}/resolve", resolve, "POST", f"An operator closes the {kind}"),
    )
    for path, endpoint, method, summary in routes:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=response_model,
            summary=summary,
            name=f"{kind}_{endpoint.__name__}",
        )
