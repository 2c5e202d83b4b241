"""The web chat on the embedded default (SQLite, no Redis): a restart of the server resumes
a half-filled 申请表 in the same browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from test_http import origin, visit

from bot.app import build_app
from bot.config import load_settings
from support import GOOD_ANSWERS
from webserver import serving


class Browser:
    """One visitor's websocket: what the bot answered last, and the buttons it showed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.text = ""
        self.buttons: list[dict[str, Any]] = []

    async def send(self, payload: dict[str, str]) -> str:
        await self.ws.send_json(payload)
        texts, buttons = [], []
        while (frame := await self.ws.receive_json())["type"] != "answer":
            pass  # a notice
        for message in frame["messages"]:
            if message["from"] == "bot":
                texts.append(str(message["text"]))
                buttons += [b for row in message["buttons"] for b in row]
        self.text, self.buttons = "\n".join(texts), buttons or self.buttons
        return self.text

    async def say(self, text: str) -> str:
        return await self.send({"type": "text", "text": text})

    async def press(self, label: str) -> str:
        (data,) = [b["data"] for b in self.buttons if label in b["label"]][:1]
        return await self.send({"type": "button", "data": data})


async def test_a_server_restart_mid_application_resumes_in_the_same_browser(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        redis_url=None,
        files_dir=tmp_path / "files",
    )
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        app = await build_app(settings)
        async with serving(app) as served:
            await visit(client, served.url)
            async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
                await ws.receive_json()  # history
                browser = Browser(ws)
                await browser.say("/apply")
                await browser.press("一般项目")
                await browser.press("是，已在新区立项")
                await browser.press("不是房地产")
                await browser.say(GOOD_ANSWERS["company"])
        await app.close()
        shown = browser.buttons  # still on the visitor's screen
        assert "第 5/11 步" in browser.text

        app = await build_app(settings)
        async with serving(app) as served:
            await visit(client, served.url)
            async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
                await ws.receive_json()
                browser = Browser(ws)
                browser.buttons = shown
                assert "第 6/11 步" in await browser.press("跳过")
                answer = await browser.say(GOOD_ANSWERS["project_name"])
                assert "第 7/11 步" in answer and "投资项目统一代码" in answer
        await app.close()
