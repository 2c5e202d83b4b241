"""A WeChat API stub on 127.0.0.1 (the endpoints the channel uses), and a fake WeChat server
that posts signed callbacks (明文 or 安全模式) to the bot's `/wechat` route.

The stub answers with WeChat's JSON shapes ({"errcode": …, "errmsg": …}); it issues access
tokens from /cgi-bin/stable_token, refuses unknown or expired ones with 42001 (`expire_tokens`
ends every token issued so far, as WeChat does after 7,200 s), and error codes can be queued
per path (`fail`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from defusedxml import ElementTree

from bot.app import App
from bot.channels.wechat.crypto import MessageCrypto
from bot.config import Settings

APP_ID = "wx0123456789abcdef"
APP_SECRET = "stub-app-secret"
TOKEN = "callbacktoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_0123456789ab"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
PUBLIC = "https://bdb.example.gov.cn"
MSG_IDS = itertools.count(int(time.time()) * 1000)  # WeChat's MsgIds are unique across users


def wechat_settings(app: App, stub: WeChatApiStub, **extra: Any) -> Settings:
    """The app's settings with the WeChat channel on, in 安全模式, against `stub`."""
    values: dict[str, Any] = {
        "wechat_token": TOKEN,
        "wechat_app_id": APP_ID,
        "wechat_app_secret": APP_SECRET,
        "wechat_aes_key": AES_KEY,
        "wechat_api_url": stub.url,
        "web_public_url": PUBLIC,
        "download_secret": "test-download-secret",
    }
    return app.settings.model_copy(update=values | extra)


@dataclass
class Call:
    path: str
    body: dict[str, Any]
    token: str

    @property
    def touser(self) -> str:
        return str(self.body.get("touser", ""))

    @property
    def text(self) -> str:
        return str(self.body.get("text", {}).get("content", ""))


class WeChatApiStub:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.tokens_issued: list[str] = []
        self.valid: set[str] = set()
        self.failures: dict[str, deque[int]] = defaultdict(deque)
        self.media = {"MEDIA-1": (JPEG, "image/jpeg")}
        self._counter = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_post("/cgi-bin/stable_token", self.stable_token)
        self.app.router.add_get("/cgi-bin/media/get", self.media_get)
        for path in (
            "/cgi-bin/message/custom/send",
            "/cgi-bin/message/template/send",
            "/cgi-bin/message/subscribe/bizsend",
            "/cgi-bin/menu/create",
            "/cgi-bin/qrcode/create",
        ):
            self.app.router.add_post(path, self.api)
        self.server = TestServer(self.app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (42001), as after its 7,200 s."""
        self.valid.clear()

    def fail(self, path: str, code: int, times: int = 1) -> None:
        self.failures[path].extend([code] * times)

    def called(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    def texts_to(self, openid: str) -> list[str]:
        sent = self.called("/cgi-bin/message/custom/send")
        return [call.text for call in sent if call.touser == openid]

    async def stable_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appid") != APP_ID or body.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"ACCESS-{next(self._counter)}-{secrets.token_hex(4)}"
        self.tokens_issued.append(token)
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    def _refusal(self, request: web.Request) -> dict[str, Any] | None:
        if request.query.get("access_token") not in self.valid:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if self.failures[request.path]:
            code = self.failures[request.path].popleft()
            return {"errcode": code, "errmsg": f"stub failure {code}"}
        return None

    async def api(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        self.calls.append(Call(request.path, body, request.query["access_token"]))
        if request.path == "/cgi-bin/qrcode/create":
            scene = body["action_info"]["scene"]["scene_str"]
            ticket = hashlib.sha1(scene.encode()).hexdigest()
            return web.json_response(
                {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket[:12]}"}
            )
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        if request.path == "/cgi-bin/message/template/send":
            answer["msgid"] = next(self._counter)
        return web.json_response(answer)

    async def media_get(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        media = self.media.get(request.query.get("media_id", ""))
        if media is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        self.calls.append(Call(request.path, dict(request.query), request.query["access_token"]))
        content, mime = media
        return web.Response(body=content, content_type=mime)


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def cdata(value: str) -> str:
    return f"<![CDATA[{value}]]>"


@dataclass
class Answer:
    status: int
    body: str
    text: str  # the passive reply's Content ("" when the bot answered success)


class WeChatServer:
    """Posts callbacks the way WeChat's server does, signed with the account's token."""

    def __init__(self, client: TestClient, encrypted: bool = False) -> None:
        self.client = client
        self.crypto = MessageCrypto(TOKEN, AES_KEY, APP_ID) if encrypted else None

    def next_msg_id(self) -> str:
        return str(next(MSG_IDS))

    def signed(
        self, inner: str, *, token: str = TOKEN, timestamp: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat's server would post for the message `inner`."""
        stamp, nonce = str(timestamp or int(time.time())), secrets.token_hex(5)
        params = {"signature": sign(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
        body = inner
        if self.crypto is not None:
            encrypted, msg_signature = self.crypto.encrypt(inner.encode(), stamp, nonce)
            params |= {"encrypt_type": "aes", "msg_signature": msg_signature}
            body = (
                f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName>"
                f"<Encrypt>{cdata(encrypted)}</Encrypt></xml>"
            )
        return params, body.encode()

    async def post(self, inner: str, *, token: str = TOKEN, timestamp: int | None = None) -> Answer:
        return await self.send(*self.signed(inner, token=token, timestamp=timestamp))

    async def send(self, params: dict[str, str], body: bytes) -> Answer:
        """Post a query and body as they are (a replay, a forgery, a fuzzed body)."""
        response = await self.client.post("/wechat", params=params, data=body)
        raw = await response.text()
        return Answer(response.status, raw, self._content(raw))

    def _content(self, raw: str) -> str:
        if not raw.startswith("<xml>"):
            return ""
        root = ElementTree.fromstring(raw.encode())
        if self.crypto is not None:
            values = {child.tag: child.text or "" for child in root}
            assert values["MsgSignature"] == sign(
                TOKEN, values["TimeStamp"], values["Nonce"], values["Encrypt"]
            ), "reply signature"
            inner = self.crypto.decrypt(
                values["Encrypt"], values["MsgSignature"], values["TimeStamp"], values["Nonce"]
            )
            root = ElementTree.fromstring(inner)
        values = {child.tag: child.text or "" for child in root}
        assert values["MsgType"] == "text" and values["FromUserName"] == ACCOUNT
        return values["Content"]


class WxUser:
    """One WeChat user writing to the Official Account."""

    def __init__(self, server: WeChatServer, openid: str) -> None:
        self.server, self.openid = server, openid
        self.last = Answer(0, "", "")

    def _envelope(self, kind: str, extra: str, create_time: int | None = None) -> str:
        return (
            f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName>"
            f"<FromUserName>{cdata(self.openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType>{cdata(kind)}</MsgType>{extra}</xml>"
        )

    async def send(self, xml: str) -> str:
        self.last = await self.server.post(xml)
        assert self.last.status == 200, self.last
        return self.last.text

    def text_xml(self, text: str, msg_id: str | None = None) -> str:
        msg_id = msg_id or self.server.next_msg_id()
        return self._envelope("text", f"<Content>{cdata(text)}</Content><MsgId>{msg_id}</MsgId>")

    async def say(self, text: str) -> str:
        return await self.send(self.text_xml(text))

    async def image(self, media_id: str = "MEDIA-1") -> str:
        extra = (
            f"<PicUrl>{cdata('http://mmbiz.example/pic')}</PicUrl>"
            f"<MediaId>{cdata(media_id)}</MediaId><MsgId>{self.server.next_msg_id()}</MsgId>"
        )
        return await self.send(self._envelope("image", extra))

    def event_xml(self, event: str, key: str = "", create_time: int | None = None) -> str:
        extra = f"<Event>{cdata(event)}</Event><EventKey>{cdata(key)}</EventKey>"
        return self._envelope("event", extra, create_time)

    async def subscribe(self, scene: str | None = None) -> str:
        return await self.send(self.event_xml("subscribe", f"qrscene_{scene}" if scene else ""))

    async def click(self, key: str) -> str:
        return await self.send(self.event_xml("CLICK", key))
