"""Request bodies above a size are refused with 413 before they are read into memory.

Our own middleware rather than the framework's `max_body_size`: the answer (a JSON reason,
like every other refusal) must not change with the installed FastAPI or Starlette release.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in the scope to the limit a body passed, for the error handler that answers it.
TOO_LARGE_SCOPE_KEY = "telecare.body_too_large"


def too_large_detail(max_bytes: int) -> str:
    return f"request body larger than {max_bytes} bytes; nothing was saved"


def refusal(max_bytes: int) -> tuple[Message, Message]:
    """The 413 answer as ASGI messages, for when no response has started."""
    body = json.dumps({"detail": too_large_detail(max_bytes)}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes the limit; the request is answered 413."""


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, budget: int) -> None:
    """Reads and discards what is left of a refused body, at most `budget` bytes: a client
    that sends its whole body before reading the answer then reads the 413 instead of a reset
    connection. A body larger still is cut off."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimit:
    """Answers 413 when Content-Length declares more than `max_bytes`, or when a streamed body
    grows past it. Up to `drain_bytes` of the refused body are read and discarded first."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = 32 << 20) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self._max_bytes:
            await _drain(receive, self._drain_bytes)
            for message in refusal(self._max_bytes):
                await send(message)
            return
        received = 0
        body_done = started = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    scope[TOO_LARGE_SCOPE_KEY] = self._max_bytes
                    raise BodyTooLarge
            return message

        async def draining_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if TOO_LARGE_SCOPE_KEY in scope and not body_done:
                    await _drain(receive, self._drain_bytes)
            await send(message)

        try:
            await self._app(scope, counting_receive, draining_send)
        except BodyTooLarge:
            if started:  # a route that answers while still reading: nothing else to say
                raise
            # Raised through a route that read the body itself; one that was parsing it for
            # the framework became a 400, answered 413 by error_responses from TOO_LARGE_SCOPE_KEY.
            for message in refusal(self._max_bytes):
                await draining_send(message)
