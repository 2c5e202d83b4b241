"""WeCom's 待办事项 in a real headless Chromium: the app's menu link goes through WeCom's
OAuth (the stand-in) and comes back signed in to /desk as the member's staff account."""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect
from sqlalchemy import select

from bot.app import App
from bot.channels.web.server import build_web_app
from bot.channels.wecom import setup_wecom
from bot.channels.wecom.oauth import authorize_url
from bot.config import Settings
from storage.models import StaffDevice
from support import Chat, fill_application
from webserver import chromium

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_wecom_e2e import give_userid, wecom_settings
from wecom_stub import WeComStub


@pytest.fixture
async def stub() -> AsyncIterator[WeComStub]:
    api = WeComStub()
    await api.server.start_server()
    yield api
    await api.server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serving(app: App, stub: WeComStub) -> AsyncIterator[Settings]:
    """The web server with the WeCom routes, on the address the OAuth redirect names."""
    port = free_port()
    settings = wecom_settings(app, stub, web_public_url=f"http://127.0.0.1:{port}/")
    web_app = build_web_app(app, settings, poll_interval=0.2)
    setup_wecom(web_app, app, settings)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield settings
    finally:
        await runner.cleanup()


async def test_the_wecom_menu_link_signs_a_staff_member_into_desk(
    app: App, stub: WeComStub, browser: Browser
) -> None:
    li = await give_userid(app, "李娜", "LiNa")
    applicant = Chat(app.router, "applicant")
    await fill_application(applicant)
    await applicant.press("提交")
    number = re.search(r"BDB-\d{4}-\d{6}", applicant.text)
    assert number, applicant.text
    async with serving(app, stub) as settings:
        stub.oauth_member = "LiNa"  # she opens 待办事项 inside WeCom
        context = await browser.new_context()
        page = await context.new_page()
        seen: list[str] = []
        page.on("request", lambda request: seen.append(request.url))
        await page.goto(authorize_url(settings))
        assert page.url.split("#")[0] == f"{settings.web_url}desk"  # browsers keep the fragment
        await expect(page.get_by_role("heading", name="待办事项")).to_be_visible()
        await expect(page.locator(".who")).to_contain_text("李娜")
        await expect(page.locator("table.desk tr", has_text=number.group(0))).to_have_count(1)
        (cookie,) = [c for c in await context.cookies() if c["name"] == "bdb_staff"]
        assert cookie["httpOnly"]

        # The code is good once: opening the same redirect again signs nobody in.
        stranger = await (await browser.new_context()).new_page()
        (reused,) = [url for url in seen if "/wecom/oauth?code=" in url]
        answer = await stranger.goto(reused)
        assert answer is not None and answer.status == 403
        await expect(stranger.locator("body")).to_contain_text("无法登录")

        # A member who is not staff gets the refusal page, not staff data.
        stub.oauth_member = "SomeoneElse"
        await stranger.goto(authorize_url(settings))
        await expect(stranger.locator("body")).to_contain_text("尚未登记")
        assert number.group(0) not in await stranger.content()
    async with app.services.db.sessions() as session:
        devices = (await session.scalars(select(StaffDevice))).all()
        assert [(d.staff_id, d.label) for d in devices] == [(li.id, "WeCom")]
