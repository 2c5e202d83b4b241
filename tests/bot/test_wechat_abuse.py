"""The WeChat callback under abuse, served as in production: the web server's guard (per-IP
limit) in front, every callback from one address as Tencent's are, on both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import App
from bot.channels.web.server import build_web_app
from bot.channels.wechat import CALLBACK_KEY, setup_wechat
from dialogs.texts import render
from storage.models import WeChatFollower
from storage.wechat import MemoryCallbackNonces, NoncesUnavailable
from wechat_stub import TOKEN, Answer, WeChatApiStub, WeChatServer, WxUser, sign, wechat_settings

FLOOD_TEXT = render("common/flood.j2")
WELCOME = "帮代办"  # in the answer to /start


@pytest.fixture
async def stub() -> AsyncIterator[WeChatApiStub]:
    api = WeChatApiStub()
    await api.server.start_server()
    yield api
    await api.server.close()


@asynccontextmanager
async def served(app: App, stub: WeChatApiStub, **extra: Any) -> AsyncIterator[TestClient]:
    """The web server with the WeChat callback, as `bangdaiban web` builds it."""
    settings = wechat_settings(app, stub, web_secret="test-secret", **extra)
    web_app: web.Application = build_web_app(app, settings, poll_interval=0.2)
    setup_wechat(web_app, app, settings)
    async with TestClient(TestServer(web_app)) as client:
        yield client


async def count(app: App, query: Any) -> int:
    async with app.services.db.sessions() as session:
        return int(await session.scalar(query) or 0)


# -- peak traffic through Tencent's few addresses -------------------------------------------


async def test_500_messages_from_many_followers_through_one_address_are_all_answered_and_a_flooder_is_warned_once(  # noqa: E501
    app: App, stub: WeChatApiStub
) -> None:
    # Windows far longer than the test: what is counted is all within one window, however
    # slowly the shared machine runs it.
    windows = {"web_ip_window_seconds": 3600, "flood_window_seconds": 3600}
    async with served(app, stub, **windows) as client:
        server = WeChatServer(client, encrypted=True)
        followers = [WxUser(server, f"o-peak-{n:03d}") for n in range(100)]
        flooder = WxUser(server, "o-flooder")
        limit = app.settings.flood_limit
        slots = asyncio.Semaphore(16)  # Tencent posts callbacks concurrently

        async def post(user: WxUser) -> Answer:
            async with slots:
                return await server.post(user.text_xml("/start"))

        rounds = [post(user) for _ in range(5) for user in followers]
        flood = [post(flooder) for _ in range(limit + 20)]
        answers = await asyncio.gather(*rounds, *flood)
        peak, flooded = answers[: len(rounds)], answers[len(rounds) :]

        def answered(user: WxUser, passive: list[Answer]) -> int:
            """Welcomes received: passively, or (later than WECHAT_REPLY_WITHIN on a busy
            machine) as a customer-service message."""
            late = sum(WELCOME in text for text in stub.texts_to(user.openid))
            return sum(WELCOME in a.text for a in passive) + late

        def everyone_answered() -> bool:
            by_user = [peak[n :: len(followers)] for n in range(len(followers))]
            return all(answered(u, mine) == 5 for u, mine in zip(followers, by_user, strict=True))

        for _ in range(600):  # late replies are sent in the background: wait for them
            if everyone_answered() and answered(flooder, flooded) >= limit:
                break
            await asyncio.sleep(0.05)
    assert len(peak) == 500
    assert [a.status for a in peak] == [200] * 500
    assert everyone_answered()
    assert all(a.status == 200 for a in flooded)
    assert answered(flooder, flooded) == limit
    assert [a.text for a in flooded].count(FLOOD_TEXT) == 1  # warned once, not per message
    ignored = sum(a.text == "" and a.body == "success" for a in flooded)
    assert ignored == 19 + (answered(flooder, flooded) - sum(WELCOME in a.text for a in flooded))
    assert await count(app, select(func.count()).select_from(WeChatFollower)) == 101


async def test_requests_that_fail_the_signature_or_the_mode_still_count_against_the_address(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with served(embedded_app, stub, web_ip_limit=5, web_ip_window_seconds=3600) as client:
        server = WeChatServer(client, encrypted=True)
        user = WxUser(server, "o-forger")
        forged = [await server.post(user.text_xml("/start"), token="guessed") for _ in range(4)]
        downgraded = WeChatServer(client, encrypted=False)  # signed query, plaintext body
        forged += [await downgraded.post(user.text_xml("/start")) for _ in range(4)]
        genuine = [await WxUser(server, f"o-real-{n}").say("/start") for n in range(8)]
    assert [a.status for a in forged] == [403] * 5 + [429] * 3
    assert all(WELCOME in text for text in genuine)  # WeChat's own are not counted


async def test_a_flooded_photo_is_not_fetched(embedded_app: App, stub: WeChatApiStub) -> None:
    limit = embedded_app.settings.flood_limit
    async with served(embedded_app, stub, flood_window_seconds=3600) as client:
        user = WxUser(WeChatServer(client, encrypted=True), "o-photos")
        for _ in range(limit):
            await user.say("/start")
        warned = await user.image()
        ignored = await user.image()
    assert warned == FLOOD_TEXT and ignored == "" and user.last.body == "success"
    assert stub.called("/cgi-bin/media/get") == []  # counted before the download


# -- 安全模式 cannot be downgraded, a signed query is used once ---------------------------------


def plaintext(user: WxUser, text: str) -> bytes:
    return user.text_xml(text).encode()


async def test_a_plaintext_callback_in_safe_mode_is_refused(app: App, stub: WeChatApiStub) -> None:
    async with served(app, stub) as client:
        server = WeChatServer(client, encrypted=False)  # signed with the token, not encrypted
        victim = WxUser(server, "o-victim")
        answer = await server.post(victim.text_xml("/start"))
    assert answer.status == 403 and answer.text == ""
    assert await count(app, select(func.count()).select_from(WeChatFollower)) == 0


async def test_plaintext_is_accepted_in_safe_mode_only_when_the_setting_says_so(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with served(embedded_app, stub, wechat_accept_plaintext=True) as client:
        plain = WxUser(WeChatServer(client, encrypted=False), "o-plain")
        encrypted = WxUser(WeChatServer(client, encrypted=True), "o-encrypted")
        assert WELCOME in await plain.say("/start")
        assert WELCOME in await encrypted.say("/start")


async def test_in_compatibility_mode_only_the_encrypted_message_counts(
    app: App, stub: WeChatApiStub
) -> None:
    """WeChat's 兼容模式 posts plaintext fields beside Encrypt: what is read is the ciphertext."""
    async with served(app, stub) as client:
        server = WeChatServer(client, encrypted=True)
        params, body = server.signed(WxUser(server, "o-inner").text_xml("/start"))
        outer = WxUser(server, "o-outer").text_xml("/start").removesuffix("</xml>")
        both = outer.encode() + body.removeprefix(b"<xml>")  # plaintext fields, then Encrypt
        answer = await server.send(params, both)
    assert answer.status == 200 and WELCOME in answer.text
    async with app.services.db.sessions() as session:
        openids = set((await session.scalars(select(WeChatFollower.openid))).all())
    assert openids == {"o-inner"}


async def test_a_logged_signature_with_a_forged_plaintext_body_is_refused(
    app: App, stub: WeChatApiStub
) -> None:
    """The attack of the issue: a signature from a proxy log, a body naming a follower."""
    async with served(app, stub) as client:
        server = WeChatServer(client, encrypted=True)
        victim = WxUser(server, "o-victim")
        params, body = server.signed(victim.text_xml("/start"))
        genuine = await server.send(params, body)  # WeChat's callback, then seen in a log
        stolen = {k: params[k] for k in ("signature", "timestamp", "nonce")}
        forged = await server.send(stolen, plaintext(victim, "/mycases"))
        forged_aes = await server.send(
            params, b"<xml><Encrypt><![CDATA[QUFBQQ==]]></Encrypt></xml>"
        )
    assert genuine.status == 200 and WELCOME in genuine.text
    assert forged.status == 403 and forged.body == "forbidden"
    assert forged_aes.status == 403 and forged_aes.body == "forbidden"


async def test_a_replayed_encrypted_callback_is_refused(app: App, stub: WeChatApiStub) -> None:
    async with served(app, stub) as client:
        server = WeChatServer(client, encrypted=True)
        user = WxUser(server, "o-replayed")
        params, body = server.signed(user.text_xml("/start"))
        first = await server.send(params, body)
        again = await server.send(params, body)
        # Another message under the same signed query: refused, whatever its MsgId.
        other = await server.send(params, server.signed(user.text_xml("/help"))[1])
    assert first.status == 200 and WELCOME in first.text
    assert again.status == 403 and again.text == ""
    assert other.status == 403 and other.text == ""


async def test_a_replayed_query_is_refused_in_plaintext_mode_too(
    app: App, stub: WeChatApiStub
) -> None:
    async with served(app, stub, wechat_aes_key=None) as client:
        server = WeChatServer(client)
        user = WxUser(server, "o-plain-mode")
        params, body = server.signed(user.text_xml("/start"))
        first = await server.send(params, body)
        replayed = await server.send(params, plaintext(WxUser(server, "o-someone"), "/start"))
        echo = {k: params[k] for k in ("signature", "timestamp", "nonce")} | {"echostr": "e-1"}
        verification = await client.get("/wechat", params=echo)
        echoed = await verification.text()
    assert first.status == 200 and WELCOME in first.text
    assert replayed.status == 403
    assert verification.status == 403 and "e-1" not in echoed
    assert await count(app, select(func.count()).where(WeChatFollower.openid == "o-someone")) == 0


@pytest.mark.parametrize("backend", ["production"])  # embedded: one process, pairs in memory
async def test_a_replay_to_another_instance_is_refused_through_redis(
    app: App, stub: WeChatApiStub
) -> None:
    assert app.services.state.redis is not None
    async with served(app, stub) as one, served(app, stub) as other:
        params, body = WeChatServer(one, encrypted=True).signed(
            WxUser(WeChatServer(one), "o-two").text_xml("/start")
        )
        first = await WeChatServer(one, encrypted=True).send(params, body)
        replayed = await WeChatServer(other, encrypted=True).send(params, body)
    assert first.status == 200 and replayed.status == 403


async def test_verification_is_signed_and_used_once(embedded_app: App, stub: WeChatApiStub) -> None:
    async with served(embedded_app, stub) as client:
        stamp, nonce = str(int(time.time())), "1234567890"
        query = {"signature": sign(TOKEN, stamp, nonce), "timestamp": stamp, "nonce": nonce}
        first = await client.get("/wechat", params=query | {"echostr": "e-123"})
        again = await client.get("/wechat", params=query | {"echostr": "<script>"})
        assert first.status == 200 and await first.text() == "e-123"
        assert again.status == 403 and "<script>" not in await again.text()


async def test_the_memory_nonce_store_is_bounded_and_forgets_only_stale_pairs() -> None:
    nonces = MemoryCallbackNonces(limit=3)
    now = int(time.time())
    assert [await nonces.claim(now, str(n), 300) for n in range(3)] == [True, True, True]
    assert await nonces.claim(now, "1", 300) is False
    with pytest.raises(NoncesUnavailable):  # full of pairs still in their window: refuse
        await nonces.claim(now, "fresh", 300)
    stale = MemoryCallbackNonces(limit=3)
    for n in range(3):
        assert await stale.claim(now - 400, str(n), 300)  # already past its window
    assert await stale.claim(now, "fresh", 300)  # the stale ones made room
    assert await stale.claim(now, "fresh", 300) is False


async def test_a_full_nonce_store_answers_busy_and_wechat_retries(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with served(embedded_app, stub) as client:
        gate = client.server.app[CALLBACK_KEY].gate
        gate.nonces = MemoryCallbackNonces(limit=1)
        server = WeChatServer(client, encrypted=True)
        first = await server.post(WxUser(server, "o-first").text_xml("/start"))
        second = await server.post(WxUser(server, "o-second").text_xml("/start"))
    assert first.status == 200 and WELCOME in first.text
    assert second.status == 503 and second.text == ""  # not taken: no follower recorded
    assert await count(embedded_app, select(func.count()).select_from(WeChatFollower)) == 1
