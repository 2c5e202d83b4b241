"""The web chat's HTTP edges without a browser: origin check, CSRF, rate limits, cookies,
headers, a path prefix behind a proxy."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSServerHandshakeError
from sqlalchemy import func, select

from bot.app import App
from storage import web_history
from storage.models import Applicant, WebMessage
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
    serving,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def visit(client: aiohttp.ClientSession, url: str) -> str:
    """Open the page (which sets the cookie); returns its CSRF token."""
    async with client.get(url) as response:
        assert response.status == 200
        page = await response.text()
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert match
    return match.group(1)


def origin(url: str) -> str:
    return url.split("/", 3)[0] + "//" + url.split("/", 3)[2]


async def upload(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="a.png", content_type="image/png")
    async with client.post(f"{url}upload", data=form, headers=headers) as response:
        await response.read()
        return response


async def test_websocket_needs_the_pages_origin(
    served: Served, client: aiohttp.ClientSession
) -> None:
    await visit(client, served.url)
    for headers in ({}, {"Origin": "https://evil.example"}):
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect(f"{served.url}ws", headers=headers)
        assert refused.value.status == 403
    async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
        assert (await ws.receive_json())["type"] == "history"


async def test_websocket_needs_the_signed_cookie(served: Served) -> None:
    async with aiohttp.ClientSession() as stranger:
        cookie = {"Cookie": "bdb_chat=forged.value"}
        with pytest.raises(WSServerHandshakeError) as refused:
            await stranger.ws_connect(f"{served.url}ws", origin=origin(served.url), headers=cookie)
        assert refused.value.status == 403


async def test_posts_need_the_csrf_token_of_this_visitor(
    served: Served, client: aiohttp.ClientSession
) -> None:
    token = await visit(client, served.url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        other_token = await visit(other, served.url)
    assert (await upload(client, served.url, {})).status == 403
    assert (await upload(client, served.url, {"X-CSRF-Token": "0" * 64})).status == 403
    assert (await upload(client, served.url, {"X-CSRF-Token": other_token})).status == 403
    refused = await upload(
        client, served.url, {"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert refused.status == 403
    # Past the CSRF check; refused only because nothing asked this chat for a file.
    assert (await upload(client, served.url, {"X-CSRF-Token": token})).status == 409


async def test_too_many_requests_from_one_address_are_refused(
    app: App, client: aiohttp.ClientSession
) -> None:
    async with serving(app, web_ip_limit=5, web_ip_window_seconds=600) as served:
        statuses = []
        for _ in range(7):
            async with client.get(served.url) as response:
                statuses.append(response.status)
        assert statuses == [200] * 5 + [429, 429]


async def test_one_chat_sending_too_fast_is_told_once_then_ignored(
    app: App, client: aiohttp.ClientSession
) -> None:
    async with serving(app, flood_limit=3, flood_window_seconds=600) as served:
        await visit(client, served.url)
        async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
            await ws.receive_json()  # history
            answers: list[list[str]] = []
            for _ in range(5):
                await ws.send_json({"type": "text", "text": "/help"})
                answer = await ws.receive_json()  # one frame: the complete answer
                assert answer["type"] == "answer"
                texts = [str(m["text"]) for m in answer["messages"] if m["from"] == "bot"]
                answers.append(texts)
        assert all(len(a) == 1 and "太快" not in a[0] for a in answers[:3])
        assert len(answers[3]) == 1 and "太快" in answers[3][0]
        assert answers[4] == []


@pytest.mark.parametrize("backend", ["production"])
async def test_a_message_costs_two_redis_round_trips_with_both_windows_in_the_first(
    app: App, client: aiohttp.ClientSession
) -> None:
    redis = app.services.state.redis
    assert redis is not None
    commands: list[tuple[str, ...]] = []
    real = redis.execute_command

    async def counted(*args, **options):  # type: ignore[no-untyped-def]
        commands.append(tuple(str(arg) for arg in args))
        return await real(*args, **options)

    async with serving(app) as served:
        await visit(client, served.url)
        async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
            await ws.receive_json()  # history
            await ws.send_json({"type": "text", "text": "/menu"})  # the scripts are loaded
            assert (await ws.receive_json())["type"] == "answer"
            redis.execute_command = counted  # type: ignore[method-assign]
            for text in ("/help", "怎么申请帮代办"):
                await ws.send_json({"type": "text", "text": text})
                assert (await ws.receive_json())["type"] == "answer"
            redis.execute_command = real  # type: ignore[method-assign]
    assert len(commands) == 4  # two messages, two round trips each
    firsts = [command for command in commands if any(":lock:web:" in a for a in command)]
    assert len(firsts) == 4  # lock+load and save+unlock, both on the chat's lock
    for command in commands[::2]:  # lock+load counts the chat's and the address's windows
        assert any(":flood:web:" in arg for arg in command)
        assert any(":flood:webip:" in arg for arg in command)
    for command in commands[1::2]:
        assert not any(":flood:" in arg for arg in command)


async def test_messages_over_the_addresss_window_are_refused_unanswered(
    app: App, client: aiohttp.ClientSession
) -> None:
    # The page and the socket's upgrade count too: 2 requests, then 3 messages fit.
    async with serving(app, web_ip_limit=5, web_ip_window_seconds=600) as served:
        await visit(client, served.url)
        async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
            await ws.receive_json()  # history
            frames = []
            for _ in range(5):
                await ws.send_json({"type": "text", "text": "/help"})
                frames.append(await ws.receive_json())
    assert [frame["type"] for frame in frames] == ["answer"] * 3 + ["limited"] * 2
    async with app.services.db.sessions() as session:  # the history is written at the end
        stored = (await session.scalars(select(WebMessage.payload))).all()
    assert len(stored) == 6  # three messages and their answers: the refused ones not stored


async def test_the_sending_tab_gets_the_replies_and_the_chats_other_tabs_everything(
    served: Served, client: aiohttp.ClientSession
) -> None:
    await visit(client, served.url)
    async with (
        client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as sending,
        client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as other,
    ):
        for ws in (sending, other):
            assert (await ws.receive_json())["type"] == "history"
        await sending.send_json({"type": "text", "text": "/help"})
        mine, theirs = await sending.receive_json(), await other.receive_json()
    assert mine["type"] == "answer"
    assert [message["from"] for message in mine["messages"]] == ["bot"]
    assert theirs["type"] == "messages"  # shown there, but that tab awaits no answer
    assert [message["from"] for message in theirs["messages"]] == ["me", "bot"]
    assert theirs["messages"][0]["text"] == ["/help"]
    assert theirs["messages"][1] == mine["messages"][0]


async def test_page_has_a_strict_policy_and_no_inline_script(
    served: Served, client: aiohttp.ClientSession
) -> None:
    async with client.get(served.url) as response:
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
        cookie = response.headers["Set-Cookie"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", page))
    assert not re.search(r"\son[a-z]+=", page)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


async def test_behind_a_proxy_under_a_path_prefix(app: App, client: aiohttp.ClientSession) -> None:
    async with serving(app, web_base_path="/chat", web_trust_proxy=True) as served:
        bare = served.url.rstrip("/")
        async with client.get(bare, allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/chat/"
        async with client.get(served.url, headers={"X-Forwarded-Proto": "https"}) as response:
            cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "Path=/chat" in cookie
        async with client.get(f"{served.url}static/app.js") as response:
            assert response.status == 200 and "WebSocket" in await response.text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as plain:
            await visit(plain, served.url)  # over http: a cookie the client sends back
            async with plain.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
                assert (await ws.receive_json())["type"] == "history"


async def test_a_qr_codes_source_tag_is_stored_on_the_applicant(
    served: Served, client: aiohttp.ClientSession
) -> None:
    await visit(client, f"{served.url}?src=poster")
    await visit(client, f"{served.url}?src=window")  # the first source stays
    await visit(client, f"{served.url}?src=unknown")
    async with served.app.services.db.sessions() as session:
        sources = (await session.scalars(select(Applicant.source))).all()
    assert sources == ["poster"]


async def test_a_reload_shows_the_last_200_messages_and_keeps_no_more(
    served: Served, client: aiohttp.ClientSession
) -> None:
    await visit(client, served.url)
    async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
        await ws.receive_json()  # history
        await ws.send_json({"type": "text", "text": "/help"})
        await ws.receive_json()  # the answer
    async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
        await ws.receive_json()  # connecting writes the batched history: the chat has rows
    async with served.app.services.db.transaction() as session:
        (chat_id,) = set((await session.scalars(select(WebMessage.chat_id))).all())
        web_history.append(session, chat_id, [{"type": "bot", "text": f"m{n}"} for n in range(250)])
    async with client.ws_connect(f"{served.url}ws", origin=origin(served.url)) as ws:
        history = await ws.receive_json()
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(50, 250)]
    async with served.app.services.db.sessions() as session:
        kept = await session.scalar(
            select(func.count()).select_from(WebMessage).where(WebMessage.chat_id == chat_id)
        )
    assert kept == 200
