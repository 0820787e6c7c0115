"""The backend's HTTP API as the simulator uses it: a real client, with a technician token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
GET_ATTEMPTS = 3


class ApiError(RuntimeError):
    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        self.status_code = response.status_code


class Api:
    """`async with Api(url, token) as api:`; every method raises ApiError on an error answer."""

    def __init__(self, base_url: str, token: str | None, *, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_s,
            # Drop idle connections before the server does (uvicorn keeps them 5 s): reusing one
            # the server is closing fails the request with a ReadError.
            limits=httpx.Limits(max_connections=32, keepalive_expiry=2.0),
        )
        self._paths: set[str] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def has(self, method: str, path: str) -> bool:
        """Feature detection from the OpenAPI document: does this backend serve `path`?"""
        if self._paths is None:
            response = await self._http.get("/openapi.json")
            if response.status_code != httpx.codes.OK:
                self._paths = set()
            else:
                paths = response.json().get("paths", {})
                self._paths = {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops}
        return f"{method.upper()} {API_PREFIX}{path}" in self._paths

    async def get(self, path: str, **params: Any) -> Any:
        """GET, retried on a transport error (it is idempotent); ApiError on an error answer."""
        for attempt in range(GET_ATTEMPTS):
            try:
                response = await self._http.get(API_PREFIX + path, params=params)
                break
            except httpx.TransportError as exc:
                if attempt + 1 == GET_ATTEMPTS:
                    raise
                log.warning("api GET failed, retrying path=%s error=%r", path, exc)
                await asyncio.sleep(0.5 * (attempt + 1))
        if response.status_code != httpx.codes.OK:
            raise ApiError(f"GET {path}", response)
        return response.json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self._http.post(API_PREFIX + path, json=body)

    async def alert_rules(self) -> dict[str, Any]:
        rules: dict[str, Any] = await self.get("/alert-rules")
        return rules

    async def pages(
        self, path: str, *, since: datetime | None = None, **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list endpoint, following `next` cursors."""
        query: dict[str, Any] = {"limit": 1000, **params}
        if since is not None:
            query["since"] = since.isoformat()
        while True:
            body = await self.get(path, **query)
            for item in body["items"]:
                yield item
            if not body.get("next"):
                return
            query["cursor"] = body["next"]
