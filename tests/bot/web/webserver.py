"""The web chat served on a free port, and a real headless Chromium (Debian's package).

A test module takes the `served` and `browser` fixtures by importing them from here (a
conftest.py here would shadow the root one for `from conftest import …`); one that needs other
settings wraps `serving` in its own fixture."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright, expect

from bot.app import App
from bot.channels.web.server import build_web_app
from conftest import missing

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
expect.set_options(timeout=20_000)  # two cores shared by many runs: generous, never a timing test


@dataclass
class Served:
    app: App
    url: str
    web_app: web.Application


async def serve(app: App, **settings: object) -> tuple[web.AppRunner, Served]:
    config = app.settings.model_copy(update={"web_secret": "test-secret", **settings})
    web_app = build_web_app(app, config, poll_interval=0.2)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = str(settings.get("web_base_path", ""))
    return runner, Served(app, f"http://127.0.0.1:{port}{base}/", web_app)


@asynccontextmanager
async def serving(app: App, **settings: object) -> AsyncIterator[Served]:
    runner, result = await serve(app, **settings)
    try:
        yield result
    finally:
        await runner.cleanup()


@pytest.fixture(name="served")
async def served_fixture(app: App) -> AsyncIterator[Served]:
    """The web chat of the test's app, with the default settings."""
    async with serving(app) as result:
        yield result


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat before a browser starts)
        missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched
