"""The web chat on a slow or flaky network (issue 32): a first visit's page carries the greeting
(shown before the script or the socket arrive, never twice, nothing written until the chat
starts); a message typed while offline shows as pending and is sent exactly once."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from playwright.async_api import Browser, Page, Route, WebSocketRoute, expect
from sqlalchemy import func, select

from bot.app import App
from bot.channels.web.server import CHANNEL_KEY
from storage import web_history
from storage.models import Applicant, WebMessage
from webpage import IDLE, idle, open_chat
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

GREETING = "您好！这里是湖南湘江新区投资建设项目"
QUESTION = "帮代办收费吗"


async def rows(app: App) -> tuple[int, int]:
    """(applicants, web chat messages) in the database."""
    async with app.services.db.sessions() as session:
        people = await session.scalar(select(func.count(Applicant.id)))
        messages = await session.scalar(select(func.count(WebMessage.id)))
    return people or 0, messages or 0


async def history(served: Served) -> list[dict[str, object]]:
    channel = served.web_app[CHANNEL_KEY]
    (chat_id,) = channel.hub.chat_ids()
    await channel.history.flush()
    async with served.app.services.db.sessions() as session:
        return await web_history.recent(session, chat_id)


def words(message: dict[str, object]) -> str:
    return json.dumps(message["text"], ensure_ascii=False)


async def reconnected(page: Page, sockets: list[WebSocketRoute], before: int) -> None:
    """Wait for a new connection to reach the server and the page to be idle on it."""
    for _ in range(600):
        if len(sockets) > before:
            break
        await page.wait_for_timeout(100)  # polling a condition; nothing measures this time
    assert len(sockets) > before, "the page did not reconnect"
    await page.wait_for_selector(IDLE)


async def test_first_page_carries_the_greeting_and_writes_nothing(served: Served) -> None:
    before = await rows(served.app)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(served.url) as first:
            page = await first.text()
        assert GREETING in page and 'data-data="m:apply">申请帮代办</button>' in page
        assert await rows(served.app) == before  # neither the core nor the database ran
        async with client.get(served.url) as again:  # the cookie: the chat has begun
            assert GREETING not in await again.text()


async def test_greeting_shows_before_the_script_and_only_once(
    served: Served, browser: Browser
) -> None:
    page = await browser.new_page()
    arrived = asyncio.Event()

    async def hold_script(route: Route) -> None:
        await arrived.wait()
        await route.continue_()

    await page.route("**/static/app.js", hold_script)
    await page.goto(served.url, wait_until="commit")
    bubble = page.locator("#log .msg.bot")
    await expect(bubble).to_contain_text(GREETING)  # on screen with no script and no socket
    await expect(bubble.get_by_role("button", name="申请帮代办")).to_be_visible()
    assert await page.evaluate("document.body.hasAttribute('data-connected')") is False
    arrived.set()
    await page.wait_for_selector(IDLE)
    await expect(bubble).to_have_count(1)
    await expect(bubble).to_contain_text(GREETING)
    stored = await history(served)
    assert len(stored) == 1 and GREETING in words(stored[0])  # /start ran once, for real
    await bubble.get_by_role("button", name="联系我们").click()
    await idle(page)
    await expect(page.locator("#log .msg.bot").last).to_contain_text("0731-")
    await page.reload()
    await page.wait_for_selector(IDLE)
    await expect(page.locator("#log .msg.bot")).to_have_count(2)


async def test_message_typed_offline_is_pending_and_sent_once_on_reconnect(
    served: Served, browser: Browser
) -> None:
    online = True
    sent: list[str] = []  # what the page sent to the server, frame by frame
    sockets: list[WebSocketRoute] = []

    async def network(ws: WebSocketRoute) -> None:
        if not online:  # the network is down: the connection fails at once
            await ws.close(code=1011)
            return
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            sent.append(str(message))
            server.send(message)

        ws.on_message(forward)
        sockets.append(ws)

    page = await (await browser.new_context()).new_page()
    await page.route_web_socket("**/ws", network)
    await open_chat(page, served.url)

    online = False
    await sockets[-1].close(code=1011)
    conn = page.locator("#conn")
    await expect(conn).to_contain_text("连接已断开")
    await page.get_by_role("textbox", name="输入消息").fill(QUESTION)
    await page.get_by_role("button", name="发送", exact=True).click()
    pending = page.locator("#log .msg.me")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text(QUESTION)
    await expect(pending).to_contain_text("待发送")  # said in words, not by colour alone
    await expect(conn).to_contain_text("1 条消息待发送")
    assert not [frame for frame in sent if QUESTION in frame]

    online = True  # the page reconnects by itself, with its back-off
    await reconnected(page, sockets, len(sockets))
    await expect(pending).to_have_count(1)
    await expect(pending).not_to_contain_text("待发送")
    await expect(page.locator("#log .msg.bot").last).to_contain_text("免费")
    assert len([frame for frame in sent if QUESTION in frame]) == 1
    stored = [m for m in await history(served) if QUESTION in words(m)]
    assert [m["from"] for m in stored] == ["me"]

    opened = len(sockets)
    await sockets[-1].close(code=1011)  # another drop: nothing is sent again
    await reconnected(page, sockets, opened)
    await expect(pending).to_have_count(1)
    assert len([frame for frame in sent if QUESTION in frame]) == 1
