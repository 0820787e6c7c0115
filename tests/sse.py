"""Reading an event stream as a browser does: frames of `field: value` lines, a blank line
ends one; comments (`: ...`) and `retry:` are kept apart from events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    event: str
    data: dict[str, Any]


@dataclass
class SseReader:
    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    retry_ms: int | None = None

    def __post_init__(self) -> None:
        self._lines: AsyncIterator[str] = self.response.aiter_lines()

    async def next(self, within_s: float = 15) -> SseEvent:
        """The next event; fails after `within_s` (the reader is done then) or at the end."""
        async with asyncio.timeout(within_s):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        event_id = fields.get("id")
                        return SseEvent(
                            int(event_id) if event_id else None,
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                        )
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.comments.append(value)
                elif name == "retry":
                    self.retry_ms = int(value)
                else:
                    fields[name] = value
        raise AssertionError("the event stream ended")

    async def comment(self, within_s: float = 15) -> str:
        """The next comment line (e.g. a keep-alive), skipping whatever else comes first."""
        async with asyncio.timeout(within_s):
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    return self.comments[-1]
        raise AssertionError("the event stream ended")

    async def until(
        self, found: Callable[[SseEvent], bool], *, within_s: float = 20, what: str = "event"
    ) -> list[SseEvent]:
        """Every event read up to and including the first for which `found` is true."""
        seen: list[SseEvent] = []
        try:
            async with asyncio.timeout(within_s):
                while True:
                    seen.append(await self.next(within_s))
                    if found(seen[-1]):
                        return seen
        except TimeoutError:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}") from None

    async def ended(self, within_s: float = 15) -> bool:
        """True once the server closes the stream cleanly (it fails on anything else)."""
        async with asyncio.timeout(within_s):
            async for _ in self._lines:
                pass
        return True


def about(device_id: str) -> Callable[[SseEvent], bool]:
    return lambda e: e.data.get("item", {}).get("device_id") == device_id
