"""/api/v1/events: Server-Sent Events, every new or changed alert and alarm (docs/CONSOLE.md).

A stream starts where the client left off (`Last-Event-ID`, or `?last_event_id=` for a first
connection) or, without one, at the newest event. It sends what was missed from the `events`
table, then what the hub delivers live, de-duplicated by id (ids are in commit order, so "not
above the last id sent" is a duplicate). A client too far behind, or whose id this database
never issued, is told to `reset` (reload its lists) instead of being sent a flood.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import APIRouter, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from telecare.api.change_feed import (
    StreamEvent,
    changes_after,
    count_after,
    last_event_id,
    with_items,
)
from telecare.api.deps import AnyRole, ContextDep
from telecare.api.event_hub import EventHub, Signal
from telecare.core.metrics import Metrics
from telecare.db.pool import Pool

router = APIRouter(prefix="/events", tags=["events"])
log = logging.getLogger(__name__)

RETRY_MS = 3000  # how soon a browser's EventSource reconnects
REPLAY_MAX = 10_000  # more missed events than this: the client reloads its lists instead
_PAGE = 500
_KEEPALIVE = b": keep-alive\n\n"


def _frame(event_id: int, event: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def _control(event_id: int, event: str, **fields: object) -> bytes:
    return _frame(event_id, event, json.dumps({"last_event_id": event_id, **fields}))


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    context: ContextDep,
    _: AnyRole,
    last_event_id_header: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="the id of the last event received"),
    ] = None,
    last_event_id_query: Annotated[
        int | None,
        Query(alias="last_event_id", ge=0, description="for a first connection; the header wins"),
    ] = None,
) -> StreamingResponse:
    """`hello` (or `reset`), then one `alert` or `alarm` event per change; keep-alive comments."""
    pool = context.pool
    resume = last_event_id_header if last_event_id_header is not None else last_event_id_query
    try:
        newest = await last_event_id(pool)
        reason = None
        if resume is not None and resume > newest:
            reason = "unknown last event id"
        elif resume is not None and await count_after(pool, resume, up_to=REPLAY_MAX + 1) > (
            REPLAY_MAX
        ):
            reason = f"more than {REPLAY_MAX} events missed"
    except psycopg.OperationalError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "database unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    start = newest if resume is None or reason else resume
    keepalive_s = context.settings.event_keepalive_s
    opening = f"retry: {RETRY_MS}\n".encode()
    if reason:
        context.metrics.event_stream_catch_ups.labels("reset").inc()
        opening += _control(start, "reset", reason=reason)
    else:
        opening += _control(start, "hello", keepalive_s=keepalive_s)
    return StreamingResponse(
        _frames(context.events, pool, context.metrics, opening, start, keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _frames(
    hub: EventHub, pool: Pool, metrics: Metrics, opening: bytes, start: int, keepalive_s: float
) -> AsyncIterator[bytes]:
    with hub.subscribe() as subscription:  # before the table is read: nothing falls between
        yield opening
        last = start
        behind = True
        log.info("event stream opened from_event=%d", start)
        try:
            while True:
                if behind:
                    async for event in _missed(pool, last):
                        yield _sent(metrics, event)
                        last = event.id
                    behind = False
                got = await subscription.next(keepalive_s)
                if got is None:
                    yield _KEEPALIVE
                elif got is Signal.CLOSED:
                    return
                elif got is Signal.CATCH_UP:
                    behind = True
                elif isinstance(got, StreamEvent) and got.id > last:
                    yield _sent(metrics, got)
                    last = got.id
        except (psycopg.Error, OSError) as exc:  # the client reconnects with its last id
            log.warning("event stream ended: database unavailable error=%s", exc)
        finally:
            log.info("event stream closed last_event=%d", last)


async def _missed(pool: Pool, after: int) -> AsyncIterator[StreamEvent]:
    """Every event after `after` in the table, in id order, page by page until caught up."""
    while True:
        changes = await changes_after(pool, after, limit=_PAGE)
        for event in await with_items(pool, changes):
            yield event
        if len(changes) < _PAGE:
            return
        after = changes[-1].id


def _sent(metrics: Metrics, event: StreamEvent) -> bytes:
    metrics.event_stream_events_sent.labels(event.kind).inc()
    return _frame(event.id, event.kind, event.data)
