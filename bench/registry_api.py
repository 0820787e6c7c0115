"""The API of a running service, for the registry benchmarks: an admin client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from telecare.api.tokens import Role, create_token
from telecare.core.settings import Settings
from telecare.service import Service


@asynccontextmanager
async def admin_api(settings: Settings) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    """The API role alone (`Service(settings, {"api"})`), and an admin's client of it."""
    async with Service(settings, {"api"}) as service:
        await service.wait_ready()
        token = await create_token(service.pool, role=Role.ADMIN, name="bench")
        async with httpx.AsyncClient(
            base_url=f"{service.api_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as client:
            yield service, client
