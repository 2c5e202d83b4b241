"""A WeCom stand-in on 127.0.0.1 (the endpoints the channel uses) and a fake WeCom server
that posts signed, encrypted callbacks to the bot's `/wecom` route.

The stand-in answers with WeCom's JSON shapes ({"errcode": …, "errmsg": …}): gettoken issues
tokens (counted) and refuses expired ones with 42001; message/send keeps what each member's
phone shows — texts, and cards whose buttons an update_template_card greys out — and drops an
identical message sent again within `duplicate_check_interval`, as WeCom does; a card's
response code updates it once; error codes can be queued per path (`fail`). The OAuth page
signs in `oauth_member` and redirects back with a one-time code.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.wechat.crypto import MessageCrypto, signature

CORP_ID = "ww0123456789abcdef"
AGENT_ID = 1000002
SECRET = "stub-wecom-secret"
TOKEN = "wecomcallbacktoken"
AES_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
MSG_IDS = itertools.count(int(time.time()) * 1000)


@dataclass
class Card:
    """A template card as a member's phone shows it."""

    userid: str
    task_id: str
    body: dict[str, Any]
    response_code: str
    replaced: str | None = None  # the greyed-out button's text after an update

    @property
    def title(self) -> str:
        return str(self.body["main_title"]["title"])

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body.get('sub_title_text', '')}"

    @property
    def buttons(self) -> list[str]:
        return [] if self.replaced else [b["text"] for b in self.body["button_list"]]

    def key(self, text: str) -> str:
        for button in self.body["button_list"]:
            if button["text"] == text:
                return str(button["key"])
        raise AssertionError(f"no button {text!r} on {self.title!r}")


@dataclass
class Phone:
    """What one member sees in the app's chat, in order."""

    messages: list[str | Card] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [m for m in self.messages if isinstance(m, str)]

    @property
    def cards(self) -> list[Card]:
        return [m for m in self.messages if isinstance(m, Card)]

    @property
    def all_text(self) -> str:
        return "\n".join(m if isinstance(m, str) else m.text for m in self.messages)


class WeComStub:
    def __init__(self) -> None:
        self.token_fetches = 0
        self.valid: set[str] = set()
        self.failures: dict[str, deque[int]] = defaultdict(deque)
        self.phones: dict[str, Phone] = defaultdict(Phone)
        self.sends: list[dict[str, Any]] = []  # every accepted message/send body
        self.duplicates = 0
        self.updates: list[dict[str, Any]] = []
        self.menus: list[dict[str, Any]] = []
        self.mobiles: dict[str, str] = {}
        self.visible: set[str] | None = None  # None: every member sees the app
        self.oauth_member: str | None = None
        self._codes: dict[str, tuple[str, str, bool]] = {}  # code → userid, task, used
        self._oauth_codes: dict[str, str] = {}
        self._recent: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        self.app.router.add_post("/cgi-bin/message/send", self.send)
        self.app.router.add_post("/cgi-bin/message/update_template_card", self.update)
        self.app.router.add_post("/cgi-bin/user/getuserid", self.getuserid)
        self.app.router.add_get("/cgi-bin/auth/getuserinfo", self.getuserinfo)
        self.app.router.add_post("/cgi-bin/menu/create", self.menu)
        self.app.router.add_get("/connect/oauth2/authorize", self.authorize)
        self.server = TestServer(self.app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def expire_tokens(self) -> None:
        self.valid.clear()

    def fail(self, path: str, code: int, times: int = 1) -> None:
        self.failures[path].extend([code] * times)

    def phone(self, userid: str) -> Phone:
        return self.phones[userid]

    def press_code(self, card: Card) -> str:
        """The ResponseCode WeCom puts in the event of a press on this card."""
        code = f"PRESS-{next(self._counter)}"
        self._codes[code] = (card.userid, card.task_id, False)
        return code

    # -- handlers ---------------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> dict[str, Any] | None:
        if request.query.get("access_token") not in self.valid:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if self.failures[request.path]:
            code = self.failures[request.path].popleft()
            return {"errcode": code, "errmsg": f"stub failure {code}"}
        return None

    async def gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != CORP_ID or request.query.get("corpsecret") != SECRET:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.token_fetches += 1
        token = f"WECOM-{next(self._counter)}-{secrets.token_hex(4)}"
        self.valid.add(token)
        return web.json_response({"errcode": 0, "access_token": token, "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        assert body["agentid"] == AGENT_ID
        userid, kind = body["touser"], body["msgtype"]
        if self.visible is not None and userid not in self.visible:
            return web.json_response({"errcode": 81013, "errmsg": "user & party & tag all invalid"})
        content = json.dumps(body[kind], sort_keys=True, ensure_ascii=False)
        recent = self._recent.get((userid, content))
        interval = body.get("duplicate_check_interval", 1800)
        if body.get("enable_duplicate_check") and recent and time.time() - recent[0] < interval:
            self.duplicates += 1
            return web.json_response(recent[1])  # accepted, not shown again
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": f"M{next(self._counter)}"}
        if kind == "text":
            self.phones[userid].messages.append(body["text"]["content"])
        elif kind == "template_card":
            code = f"SEND-{next(self._counter)}"
            card = Card(userid, body[kind]["task_id"], body[kind], code)
            self._codes[code] = (userid, card.task_id, False)
            self.phones[userid].messages.append(card)
            answer["response_code"] = code
        self.sends.append(body)
        self._recent[(userid, content)] = (time.time(), answer)
        return web.json_response(answer)

    async def update(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        found = self._codes.get(body["response_code"])
        if found is None or found[2]:
            return web.json_response({"errcode": 40098, "errmsg": "invalid response_code"})
        userid, task_id, _ = found
        self._codes[body["response_code"]] = (userid, task_id, True)
        self.updates.append(body)
        for member in body["userids"]:
            for card in self.phones[member].cards:
                if card.task_id == task_id:
                    card.replaced = body["button"]["replace_name"]
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def getuserid(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        userid = self.mobiles.get(body.get("mobile", ""))
        if userid is None:
            return web.json_response({"errcode": 46004, "errmsg": "mobile not found"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "userid": userid})

    async def getuserinfo(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        userid = self._oauth_codes.pop(request.query.get("code", ""), None)  # once
        if userid is None:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "userid": userid})

    async def menu(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return web.json_response(refusal)
        assert request.query.get("agentid") == str(AGENT_ID)
        self.menus.append(json.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def authorize(self, request: web.Request) -> web.Response:
        """WeCom's OAuth page inside the app: the member is known, a code goes back."""
        query = request.query
        assert query["appid"] == CORP_ID and query["scope"] == "snsapi_base"
        assert query["agentid"] == str(AGENT_ID)
        if self.oauth_member is None:
            return web.Response(status=403, text="not in WeCom")
        code = secrets.token_urlsafe(16)
        self._oauth_codes[code] = self.oauth_member
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return web.Response(status=302, headers={"Location": target})


def cdata(value: str) -> str:
    return f"<![CDATA[{value}]]>"


class WeComServer:
    """Posts callbacks as WeCom's server does: encrypted for the app, signed with its Token."""

    def __init__(
        self,
        client: TestClient,
        stub: WeComStub,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.client, self.stub, self.settle = client, stub, settle
        self.crypto = MessageCrypto(TOKEN, AES_KEY, CORP_ID)

    def envelope(self, inner: str, stamp: str, nonce: str) -> tuple[dict[str, str], str]:
        encrypted, msg_signature = self.crypto.encrypt(inner.encode(), stamp, nonce)
        params = {"msg_signature": msg_signature, "timestamp": stamp, "nonce": nonce}
        body = (
            f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName>"
            f"<AgentID>{cdata(str(AGENT_ID))}</AgentID><Encrypt>{cdata(encrypted)}</Encrypt></xml>"
        )
        return params, body

    async def post(self, inner: str, *, token: str = TOKEN, timestamp: int | None = None) -> int:
        stamp, nonce = str(timestamp or int(time.time())), secrets.token_hex(5)
        params, body = self.envelope(inner, stamp, nonce)
        if token != TOKEN:  # signed by someone who does not know our Token
            encrypted = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
            params["msg_signature"] = signature(token, stamp, nonce, encrypted)
        response = await self.client.post("/wecom", params=params, data=body.encode())
        await response.read()
        if self.settle is not None:  # replies still on their way after the answer
            await self.settle()
        return response.status


class Member:
    """One WeCom member writing to the app."""

    def __init__(self, server: WeComServer, userid: str) -> None:
        self.server, self.userid = server, userid

    @property
    def phone(self) -> Phone:
        return self.server.stub.phone(self.userid)

    def _xml(self, kind: str, extra: str, create_time: int | None = None) -> str:
        return (
            f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName>"
            f"<FromUserName>{cdata(self.userid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType>{cdata(kind)}</MsgType><AgentID>{AGENT_ID}</AgentID>{extra}</xml>"
        )

    def text_xml(self, text: str, msg_id: str | None = None) -> str:
        msg_id = msg_id or str(next(MSG_IDS))
        return self._xml("text", f"<Content>{cdata(text)}</Content><MsgId>{msg_id}</MsgId>")

    async def send(self, xml: str) -> None:
        status = await self.server.post(xml)
        assert status == 200, status

    async def say(self, text: str) -> None:
        await self.send(self.text_xml(text))

    def press_xml(self, card: Card, button: str) -> str:
        extra = (
            f"<Event>{cdata('template_card_event')}</Event><EventKey>{cdata(card.key(button))}"
            f"</EventKey><TaskId>{cdata(card.task_id)}</TaskId>"
            f"<CardType>{cdata('button_interaction')}</CardType>"
            f"<ResponseCode>{cdata(self.server.stub.press_code(card))}</ResponseCode>"
        )
        return self._xml("event", extra)

    async def press(self, card: Card, button: str, *, shown: bool = True) -> None:
        """Press a button of a card; `shown=False` presses a copy whose update has not
        reached the phone yet (two people at once)."""
        if shown:
            assert button in card.buttons, f"{button!r} not pressable on {card.title!r}"
        await self.send(self.press_xml(card, button))
