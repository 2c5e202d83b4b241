"""Anything posted to `/wechat` — well-signed messages with hostile fields, raw bytes, bombs,
odd query strings, forged and stale signatures — in 明文模式 and 安全模式, on both backends:
never a 5xx, nothing logged as an error or with a traceback, and a genuine message sent
afterwards is still answered."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from yarl import URL

from bot.app import App
from bot.channels.web.server import build_web_app
from bot.channels.wechat import setup_wechat
from storage.models import WeChatFollower
from wechat_stub import (
    ACCOUNT,
    TOKEN,
    WeChatApiStub,
    WeChatServer,
    WxUser,
    sign,
    wechat_settings,
)

HOSTILE = ["\x00", "\u202e", "\ufeff", "]]>", "<![CDATA[", "&amp;", "&#0;", "\r\n", "项目", "/"]
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=3)), max_size=12).map("".join),
    st.builds(lambda piece, n: piece * n, st.sampled_from(HOSTILE), st.integers(1, 3000)),
)
MSG_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "file"]
EVENTS = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "LOCATION", "MASSSENDJOBFINISH"]
FIELDS = {
    "ToUserName": st.one_of(st.just(ACCOUNT), TEXTS),
    "FromUserName": st.one_of(st.sampled_from(["o-fuzz-1", "o-fuzz-2"]), TEXTS),
    "CreateTime": st.one_of(
        st.integers(-(10**15), 10**15).map(str), st.just(str(int(time.time()))), TEXTS
    ),
    "MsgType": st.one_of(st.sampled_from(MSG_TYPES), TEXTS),
    "Content": st.one_of(st.sampled_from(["/start", "/apply", "1", "/status x"]), TEXTS),
    "MsgId": st.one_of(st.integers(0, 2**64).map(str), TEXTS),
    "MediaId": st.one_of(st.just("MEDIA-1"), TEXTS),
    "Event": st.one_of(st.sampled_from(EVENTS), TEXTS),
    "EventKey": st.one_of(st.just("qrscene_"), TEXTS).flatmap(
        lambda head: TEXTS.map(lambda tail: head + tail)
    ),
}


def element(name: str, value: str, cdata: bool) -> str:
    inner = f"<![CDATA[{value}]]>" if cdata else escape(value)
    return f"<{name}>{inner}</{name}>"


PLAUSIBLE = {
    "ToUserName": st.just(ACCOUNT),
    "FromUserName": st.sampled_from(["o-fuzz-1", "o-fuzz-2", "o-fuzz-3"]),
    "CreateTime": st.builds(lambda: str(int(time.time()))),
    "MsgType": st.sampled_from(MSG_TYPES),
}


@st.composite
def message_xml(draw: st.DrawFn) -> str:
    """A WeChat message: mostly well-formed with hostile values where the core reads them,
    sometimes with any field missing or hostile."""
    if draw(st.integers(0, 3)):  # plausible: reaches the conversation
        values = {name: draw(strategy) for name, strategy in PLAUSIBLE.items()}
        optional = [n for n in FIELDS if n not in PLAUSIBLE]
        for name in draw(st.lists(st.sampled_from(optional), unique=True)):
            values[name] = draw(FIELDS[name])
        if draw(st.integers(0, 4)) == 0:  # one required field hostile
            name = draw(st.sampled_from(list(PLAUSIBLE)))
            values[name] = draw(FIELDS[name])
    else:
        names = draw(st.lists(st.sampled_from(list(FIELDS)), unique=True, min_size=2))
        values = {name: draw(FIELDS[name]) for name in names}
    parts = [element(n, v, draw(st.booleans())) for n, v in values.items()]
    if draw(st.booleans()):  # an unknown field, or a nested one
        parts.append(draw(st.sampled_from(["<Extra><A>1</A></Extra>", "<Z/>", "<!-- c -->"])))
    return "<xml>" + "".join(draw(st.permutations(parts))) + "</xml>"


BOMBS = [
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>',
    '<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    '<?xml version="1.0" encoding="gbk"?><xml><Content>x</Content></xml>',
    "<xml>" + "<a>" * 5000 + "</a>" * 5000 + "</xml>",
    "<notxml/>",
    "",
]
RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(BOMBS),
    message_xml().map(lambda xml: xml[: len(xml) // 2]),  # cut short
    st.integers(60_000, 70_000).map(lambda n: "<xml><Content>" + "x" * n + "</Content></xml>"),
)
QUERY_KEYS = ["signature", "timestamp", "nonce", "encrypt_type", "msg_signature", "echostr"]
SAFE = "abcXYZ019-._~%&=+;/?:@!$'()*,"  # characters a raw query may carry on the wire


@dataclass
class Request:
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)
    raw_query: str | None = None
    body: bytes = b""


def signed_query(timestamp: str, nonce: str) -> dict[str, str]:
    return {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


@st.composite
def requests(draw: st.DrawFn, crypto: WeChatServer) -> Request:
    kind = draw(st.sampled_from(["message"] * 4 + ["raw", "query", "raw_query", "encrypt"]))
    if kind == "message":  # signed as WeChat would: the message itself is what is fuzzed
        params, body = crypto.signed(draw(message_xml()))
        return Request(params=params, body=body)
    if kind == "raw":
        body = draw(RAW_BODIES)
        params = signed_query(str(int(time.time())), secrets.token_hex(5))
        return Request(params=params, body=body.encode() if isinstance(body, str) else body)
    if kind == "encrypt":  # a correctly signed Encrypt that is not WeChat's ciphertext
        stamp, nonce = str(int(time.time())), secrets.token_hex(5)
        encrypted = draw(st.one_of(st.text(max_size=80), st.binary(max_size=60).map(_b64)))
        aes = {"encrypt_type": "aes", "msg_signature": sign(TOKEN, stamp, nonce, encrypted)}
        params = signed_query(stamp, nonce) | aes
        return Request(params=params, body=element("Encrypt", encrypted, True).encode())
    if kind == "query":  # odd values, some signed correctly over an odd timestamp or nonce
        values = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), TEXTS, max_size=6))
        if draw(st.booleans()):
            stamp = values.get("timestamp", draw(st.sampled_from(["²", "-1", "0" * 20, "１"])))
            values |= signed_query(stamp, values.get("nonce", "n"))
        method = draw(st.sampled_from(["GET", "POST"]))
        return Request(method, values, body=draw(st.sampled_from([b"", b"<xml/>"])))
    raw = draw(st.text(alphabet=SAFE, max_size=200))
    return Request(draw(st.sampled_from(["GET", "POST"])), raw_query=raw)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@pytest.fixture
async def stub() -> AsyncIterator[WeChatApiStub]:
    api = WeChatApiStub()
    await api.server.start_server()
    yield api
    await api.server.close()


@pytest.fixture(params=["plain", "aes"])
async def callback(
    request: pytest.FixtureRequest, app: App, stub: WeChatApiStub
) -> AsyncIterator[tuple[TestClient, WeChatServer]]:
    """The served callback in 明文模式 or 安全模式, with limits out of the fuzzer's way."""
    mode = {} if request.param == "aes" else {"wechat_aes_key": None}
    limits = {"flood_limit": 10_000, "web_ip_limit": 10**9}
    config = wechat_settings(app, stub, web_secret="test-secret", **mode, **limits)
    web_app: web.Application = build_web_app(app, config, poll_interval=0.2)
    setup_wechat(web_app, app, config)
    async with TestClient(TestServer(web_app)) as client:
        yield client, WeChatServer(client, encrypted=request.param == "aes")


async def send(client: TestClient, request: Request) -> int:
    if request.raw_query is not None:
        url = URL(f"{client.make_url('/wechat')}?{request.raw_query}", encoded=True)
        response = await client.session.request(request.method, url, data=request.body)
    else:
        response = await client.request(
            request.method, "/wechat", params=request.params, data=request.body
        )
    await response.read()
    return response.status


def troubles(records: list[logging.LogRecord]) -> list[str]:
    """Log lines that say something went wrong on our side."""
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR or r.exc_info]


@given(data=st.data())
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_anything_posted_to_the_callback_is_answered_without_a_server_error(
    callback: tuple[TestClient, WeChatServer], caplog: pytest.LogCaptureFixture, data: Any
) -> None:
    client, server = callback
    caplog.clear()
    if data is not None:
        request = data.draw(requests(server))
        status = await send(client, request)
        event(f"status {status}")  # --hypothesis-show-statistics: how far the inputs got
        assert status < 500, (status, request)
    assert "帮代办" in await WxUser(server, "o-check").say("/start")  # still answering
    assert troubles(caplog.records) == []


def known_cases(server: WeChatServer) -> dict[str, Request]:
    """Inputs that once answered 500 or logged a traceback, and their like."""
    now = str(int(time.time()))

    def message(**values: str) -> Request:
        fields = {"ToUserName": ACCOUNT, "FromUserName": "o-known", "CreateTime": now}
        fields |= {"MsgType": "text", "Content": "/start", "MsgId": "1"} | values
        xml = "<xml>" + "".join(element(k, v, True) for k, v in fields.items()) + "</xml>"
        params, body = server.signed(xml)
        return Request(params=params, body=body)

    return {
        "superscript timestamp": Request("GET", signed_query("²", "n")),
        "non-ASCII signature": Request(params={"signature": "é", "timestamp": now, "nonce": "1"}),
        "request line over 8 KB": Request(params={"nonce": "x" * 9000}),
        "openid longer than the column": message(FromUserName="o" * 65),
        "empty openid": message(FromUserName=""),
        "CreateTime of 5,000 digits": message(CreateTime="9" * 5000),
        "full-width CreateTime": message(CreateTime="１７００００００００"),
        "MsgId over 64 characters": message(MsgId="1" * 65),
        "external entity": Request(params=signed_query(now, "xxe"), body=BOMBS[1].encode()),
    }


async def test_known_malformed_callbacks_are_refused_with_a_4xx_and_no_traceback(
    app: App, callback: tuple[TestClient, WeChatServer], caplog: pytest.LogCaptureFixture
) -> None:
    client, server = callback
    statuses = {name: await send(client, request) for name, request in known_cases(server).items()}
    assert {name: status for name, status in statuses.items() if not 400 <= status < 500} == {}
    # A scene longer than any QR code's (and its column) is not WeChat's: the follower is
    # welcomed, the scene not kept.
    newcomer = WxUser(server, "o-long-scene")
    assert "帮代办" in await newcomer.subscribe(scene="s" * 100)
    async with app.services.db.sessions() as session:
        follower = await session.get(WeChatFollower, newcomer.openid)
    assert follower is not None and follower.scene is None
    assert troubles(caplog.records) == []
    assert "帮代办" in await WxUser(server, "o-check").say("/start")
