"""The console is served by the API itself: every asset from this origin, nothing external."""

from __future__ import annotations

import re

import httpx

from telecare.api.console import STATIC
from telecare.service import Service

_EXTERNAL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[\w.-]+\.[a-z]{2,}", re.I)


async def test_the_page_and_every_asset_are_served_with_a_strict_policy(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.api_url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assets = sorted(p for p in STATIC.rglob("*") if p.is_file() and p.name != "index.html")
        assert {p.suffix for p in assets} == {".css", ".js", ".svg"}
        for asset in assets:
            response = await client.get(f"/console/{asset.relative_to(STATIC)}")
            assert response.status_code == 200, asset
            if asset.suffix == ".js":  # ES modules load only with a JavaScript type
                assert "javascript" in response.headers["content-type"], asset
            assert not _EXTERNAL.findall(response.text), f"{asset} refers outside"
        assert not _EXTERNAL.findall(page.text)
