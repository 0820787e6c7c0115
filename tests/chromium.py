"""Debian's Chromium, headless, driven by Playwright (never `playwright install`: no download).

The flags keep Chromium off the network it would otherwise try (these machines have none):
background networking, component updates, sync and QUIC are off. Playwright gives every
launch a fresh temporary profile (its own --user-data-dir) and, as root, --no-sandbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # the alarm tone in a headless test
]
# Where the test leaves screenshots for people to look at (the repository's ignored var/).
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            await browser.close()


def page_errors(page: Page) -> list[str]:
    """Script errors and console errors of `page`, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return errors
