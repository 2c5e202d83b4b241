"""The `/wechat` callback: WeChat's server posts each user message and event here.

Checks come first (signature, freshness, size, 安全模式 decryption), then the retry guard
(MsgId, or sender + time for events, kept in Redis or memory), then the core. Its replies go
back passively in the HTTP answer when they are ready within WECHAT_REPLY_WITHIN seconds;
otherwise the answer is `success` and the replies follow as customer-service messages.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.channels.options import pick
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.compose import Composed, compose
from bot.channels.wechat.crypto import CryptoError, MessageCrypto, signed
from bot.channels.wechat.messages import (
    BODY_LIMIT,
    BadMessage,
    WeChatMessage,
    encrypted_reply,
    fields,
    text_reply,
)
from bot.channels.wechat.sender import CHANNEL, WeChatSender, options_key
from chat.events import Button, ChatUser, Incoming, Kind, UploadedFile
from handlers.routing import UNAVAILABLE, Router
from storage import outbox, wechat
from storage.db import Database
from storage.outbox import Recipient

log = logging.getLogger(__name__)
MAX_AGE = 300  # seconds: an older (or replayed) callback is refused
SUCCESS = "success"  # tells WeChat: nothing to reply passively, do not retry
IMAGE_LIMIT = 10 * 1024 * 1024  # WeChat's own limit for an image message
USER_MESSAGES = frozenset({"text", "image", "voice", "video", "shortvideo", "location", "link"})


@dataclass(frozen=True)
class Signed:
    """The query of a callback whose signature and age were checked."""

    timestamp: str
    nonce: str
    encrypted: bool
    msg_signature: str


class WeChatCallback:
    def __init__(
        self,
        token: str,
        router: Router,
        db: Database,
        api: WeChatApi,
        sender: WeChatSender,
        crypto: MessageCrypto | None,
        seen: wechat.SeenCallbacks,
        reply_within: float,
    ) -> None:
        self.token, self.router, self.db, self.api = token, router, db, api
        self.sender, self.crypto, self.seen = sender, crypto, seen
        self.reply_within = reply_within
        self._later: set[asyncio.Task[None]] = set()  # replies that missed the passive window

    # -- HTTP ---------------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """Server verification in the admin console: echo `echostr` when signed by our token."""
        if self._signed(request.query) is None:
            return _refused(request, "verification")
        return web.Response(text=request.query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        query = self._signed(request.query)
        if query is None:
            return _refused(request, "message")
        if (request.content_length or 0) > BODY_LIMIT:
            raise web.HTTPRequestEntityTooLarge(max_size=BODY_LIMIT, actual_size=0)
        body = await request.content.read(BODY_LIMIT + 1)
        if len(body) > BODY_LIMIT:
            raise web.HTTPRequestEntityTooLarge(max_size=BODY_LIMIT, actual_size=len(body))
        try:
            message = WeChatMessage.parse(self._open(body, query))
        except CryptoError as exc:
            return _refused(request, f"encrypted message ({exc})")
        except BadMessage as exc:
            log.warning("wechat callback malformed error=%s", exc)
            raise web.HTTPBadRequest() from exc
        try:
            fresh = await self._first_sight(message)
        except UNAVAILABLE as exc:  # answer anyway: a retry is rarer than a lost message
            log.warning("wechat callback not recorded error=%s", type(exc).__name__)
            fresh = True
        if not fresh:
            log.info("wechat callback retried key=%s", message.dedupe_key)
            return web.Response(text=SUCCESS)
        composed = await self._answer_in_time(message)
        if composed is None or not composed.parts:
            return web.Response(text=SUCCESS)
        if len(composed.parts) > 1:  # a passive reply is one message: send them all later
            self._in_background(self.sender.reply_later(message.from_user, composed))
            return web.Response(text=SUCCESS)
        return self._passive(message, composed.parts[0], query)

    async def close(self) -> None:
        """Let replies on their way by customer-service message finish."""
        if self._later:
            await asyncio.wait(self._later, timeout=10)

    # -- checks ---------------------------------------------------------------------------

    def _signed(self, query: Mapping[str, str]) -> Signed | None:
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not signed(query.get("signature", ""), self.token, timestamp, nonce):
            return None
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
            return None
        encrypted = query.get("encrypt_type", "raw") == "aes"
        return Signed(timestamp, nonce, encrypted, query.get("msg_signature", ""))

    def _open(self, body: bytes, query: Signed) -> dict[str, str]:
        values = fields(body)
        if not query.encrypted:
            return values
        if self.crypto is None:
            raise CryptoError("encrypted message but WECHAT_AES_KEY is not set")
        inner = self.crypto.decrypt(
            values.get("Encrypt", ""), query.msg_signature, query.timestamp, query.nonce
        )
        return fields(inner)

    async def _first_sight(self, message: WeChatMessage) -> bool:
        """Record the callback and what it says about its sender, once."""
        if not await self.seen.first(message.dedupe_key):
            return False
        openid = message.from_user
        change: dict[str, Any] = {
            "wrote": message.msg_type in USER_MESSAGES,
            "scene": message.scene,
            "subscribed": {"subscribe": True, "unsubscribe": False}.get(message.event),
        }
        async with self.db.sessions() as session:  # a read; most callbacks write nothing
            follower = await wechat.follower(session, openid)
            blocked = await wechat.blocked(session, openid)
        if not wechat.needs_touch(follower, blocked=blocked, **change):
            return True
        async with self.db.transaction() as session:
            await wechat.touch(session, openid, **change)
            if message.event == "unsubscribe":
                await outbox.mark_unreachable(session, Recipient(CHANNEL, openid))
        if message.scene:
            log.info("wechat follower source chat=%s scene=%s", openid, message.scene)
        return True

    # -- the conversation -------------------------------------------------------------------

    async def _answer_in_time(self, message: WeChatMessage) -> Composed | None:
        task = asyncio.create_task(self.converse(message))
        done, _ = await asyncio.wait({task}, timeout=self.reply_within)
        if task in done:
            return task.result()
        self._in_background(self._reply_later(message.from_user, task))
        return None

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        later = asyncio.create_task(coroutine)
        self._later.add(later)
        later.add_done_callback(self._later.discard)

    async def _reply_later(self, openid: str, task: asyncio.Task[Composed | None]) -> None:
        composed = await task
        if composed is not None and composed.parts:
            log.info("wechat reply by customer-service message chat=%s", openid)
            await self.sender.reply_later(openid, composed)

    async def converse(self, message: WeChatMessage) -> Composed | None:
        """The core's answer to one callback, merged into WeChat's form."""
        openid = message.from_user
        state = self.router.services.state
        try:
            async with state.conversation(options_key(openid)) as memory:
                shown = [Button(b["label"], b["data"]) for b in memory.get("buttons", [])]
                incoming = await self.incoming(message, shown)
                if incoming is None:
                    return None
                replies = await self.router.handle(incoming)
                composed = compose(replies, self.sender.links.link)
                if composed.buttons:
                    memory["buttons"] = [
                        {"label": b.label, "data": b.data} for b in composed.buttons
                    ]
            return composed
        except Exception:
            log.exception("wechat message not handled chat=%s", openid)
            return None

    async def incoming(self, message: WeChatMessage, shown: list[Button]) -> Incoming | None:
        """What the core sees; None for what needs no answer (unfollowing, views)."""
        user = ChatUser(CHANNEL, message.from_user)
        if message.msg_type == "text":
            button = pick(message.content, shown)
            if button is not None:
                return Incoming.press(user, button.data)
            return Incoming.say(user, message.content)
        if message.msg_type == "image":
            file = await self._image(message)
            return (
                Incoming(user, Kind.FILE, file=file) if file else Incoming(user, Kind.UNSUPPORTED)
            )
        if message.msg_type in USER_MESSAGES:
            return Incoming(user, Kind.UNSUPPORTED)
        if message.event in ("subscribe", "scan"):
            return Incoming.say(user, "/start")
        if message.event == "click" and message.event_key:
            return Incoming.press(user, message.event_key)
        return None

    async def _image(self, message: WeChatMessage) -> UploadedFile | None:
        """A photo sent for 补正, fetched from WeChat by its MediaId."""
        try:
            content, mime = await self.api.media(message.media_id)
        except Exception as exc:
            log.warning("wechat media not fetched error=%s", type(exc).__name__)
            return None
        if len(content) > IMAGE_LIMIT:
            return None
        extension = "png" if mime == "image/png" else "jpg"
        name = f"photo_{message.msg_id or message.create_time}.{extension}"
        return UploadedFile(name=name, mime=mime, size=len(content), content=content)

    def _passive(self, message: WeChatMessage, text: str, query: Signed) -> web.Response:
        xml = text_reply(message, text, int(time.time()))
        if query.encrypted and self.crypto is not None:
            timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
            encrypted, signature = self.crypto.encrypt(xml.encode(), timestamp, nonce)
            xml = encrypted_reply(encrypted, signature, timestamp, nonce)
        return web.Response(text=xml, content_type="application/xml")


def _refused(request: web.Request, what: str) -> web.Response:
    log.warning("wechat callback refused: bad signature or stale %s from=%s", what, request.remote)
    return web.Response(status=403, text="forbidden")
