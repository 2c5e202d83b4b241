"""Two web instances on one PostgreSQL + Redis: a notice reaches every open tab of a chat on
either instance at once (NOTIFY, not the poll), once each; revoking a staff browser on one
instance signs it out on the other."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.app import App, build_app
from bot.channels.web.server import build_web_app
from storage import outbox, questions
from storage.models import Applicant, Staff, WebMessage
from storage.outbox import Recipient

pytestmark = pytest.mark.parametrize("backend", ["production"])
POLL = 3600.0  # the safety-net poll never fires within a test: only signals deliver
WAIT = 20.0  # generous: two cores shared by many runs; a signal arrives in milliseconds


@asynccontextmanager
async def instance(app: App) -> AsyncIterator[str]:
    config = app.settings.model_copy(update={"web_secret": "test-secret"})
    runner = web.AppRunner(build_web_app(app, config, poll_interval=POLL))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def urls(app: App) -> AsyncIterator[tuple[str, str]]:
    """Instance one on the test's app, instance two on a second app (its own pools)."""
    second = await build_app(app.settings, state=app.services.state)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(instance(app))
        two = await stack.enter_async_context(instance(second))
        yield one, two
    await second.services.db.dispose()


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def open_tab(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    origin = url.rstrip("/")
    ws = await session.ws_connect(
        url.replace("http://", "ws://") + "ws", headers={"Origin": origin}
    )
    assert (await ws.receive_json(timeout=WAIT))["type"] == "history"
    return ws


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message["text"], ensure_ascii=False)


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while (message := await ws.receive_json(timeout=WAIT))["type"] != kind:
        pass
    return message


async def test_a_notice_reaches_tabs_on_both_instances_once(
    app: App, urls: tuple[str, str]
) -> None:
    one, two = urls
    async with client() as browser:
        async with browser.get(one) as page:  # the cookie names the chat on both instances
            assert page.status == 200
        tab_one, tab_two = await open_tab(browser, one), await open_tab(browser, two)
        await tab_one.send_json({"type": "text", "text": "/start"})
        await next_of(tab_one, "answer")
        async with app.services.db.sessions() as session:
            chat_id = await session.scalar(
                select(Applicant.chat_id).where(Applicant.channel == "web")
            )
        assert chat_id is not None
        async with app.services.db.transaction() as session:
            outbox.enqueue(session, Recipient("web", chat_id), "您的申请已受理。", "n:1")
        for tab in (tab_one, tab_two):
            message = await next_of(tab, "message")
            assert "您的申请已受理" in shown(message["message"])
        await tab_one.send_json({"type": "text", "text": "/help"})  # nothing else came first
        answer = await tab_one.receive_json(timeout=WAIT)
        assert answer["type"] == "answer"
        assert not any("已受理" in shown(message) for message in answer["messages"])
        await tab_one.close()
        await tab_two.close()
    async with app.services.db.sessions() as session:
        history = await session.scalars(select(WebMessage).where(WebMessage.chat_id == chat_id))
        kept = [m for m in history if "已受理" in shown(m.payload)]
    assert len(kept) == 1  # the history shows it once after a reload


async def test_a_browser_revoked_on_one_instance_is_signed_out_on_both(
    app: App, urls: tuple[str, str]
) -> None:
    one, two = urls
    async with app.services.db.transaction() as session:
        li = await session.scalar(select(Staff.id).where(Staff.name == "李娜"))
        assert li is not None
        code = await questions.create_invite(session, li, dt.timedelta(hours=1))
    async with client() as browser:
        async with browser.get(one) as page:
            token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', await page.text())
        assert token
        headers = {"X-CSRF-Token": token.group(1)}
        async with browser.post(f"{one}staff/bind", json={"code": code}, headers=headers) as r:
            assert (await r.json()) == {"ok": True}
        async with browser.get(one) as page:  # the staff page carries the device's token
            token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', await page.text())
        assert token
        tab_one, tab_two = await open_tab(browser, one), await open_tab(browser, two)
        headers = {"X-CSRF-Token": token.group(1)}
        async with browser.post(f"{one}staff/unbind", headers=headers) as r:
            assert r.status == 200
        for tab in (tab_one, tab_two):
            assert await next_of(tab, "signed_out") == {"type": "signed_out"}
