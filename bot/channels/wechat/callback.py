"""The `/wechat` callback: WeChat's server posts each user message and event here.

The gate checks come first (gate.py: signature, age, 安全模式, one use per query, size,
decryption), then the retry guard (MsgId, or sender + time for events, kept in Redis or
memory), then the sender's flood window, then the core. Its replies go back passively in the
HTTP answer when they are ready within WECHAT_REPLY_WITHIN seconds; otherwise the answer is
`success` and the replies follow as customer-service messages.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from bot.channels.options import pick
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.compose import Composed, compose
from bot.channels.wechat.gate import Gate, Refused, Signed
from bot.channels.wechat.messages import WeChatMessage, encrypted_reply, text_reply
from bot.channels.wechat.sender import CHANNEL, WeChatSender, options_key
from chat.events import Button, ChatUser, Incoming, Kind, UploadedFile
from dialogs.texts import render
from handlers.routing import UNAVAILABLE, Router
from services import metrics
from storage import outbox, wechat
from storage.db import Database
from storage.outbox import Recipient
from storage.ratelimit import FloodGuard, Verdict

log = logging.getLogger(__name__)
SUCCESS = "success"  # tells WeChat: nothing to reply passively, do not retry
IMAGE_LIMIT = 10 * 1024 * 1024  # WeChat's own limit for an image message
USER_MESSAGES = frozenset({"text", "image", "voice", "video", "shortvideo", "location", "link"})
CONVERSING_EVENTS = frozenset({"subscribe", "scan", "click"})  # the core answers these


class WeChatCallback:
    def __init__(
        self,
        gate: Gate,
        router: Router,
        db: Database,
        api: WeChatApi,
        sender: WeChatSender,
        seen: wechat.SeenCallbacks,
        flood: FloodGuard,
        reply_within: float,
    ) -> None:
        self.gate, self.router, self.db, self.api = gate, router, db, api
        self.sender, self.seen, self.flood = sender, seen, flood
        self.crypto = gate.crypto
        self.reply_within = reply_within
        self._later: set[asyncio.Task[None]] = set()  # replies that missed the passive window

    # -- HTTP ---------------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """Server verification in the admin console: echo `echostr` when signed by our token."""
        try:
            await self.gate.admit(request.query, body=False)
        except Refused as refused:
            return refused.response(request)
        return web.Response(text=request.query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        try:
            query = await self.gate.admit(request.query)
            message = await self.gate.message(request, query)
        except Refused as refused:
            return refused.response(request)
        try:
            fresh = await self.seen.first(message.dedupe_key)
        except UNAVAILABLE as exc:  # answer anyway: a retry is rarer than a lost message
            log.warning("wechat callback not recorded error=%s", type(exc).__name__)
            fresh = True
        if not fresh:
            log.info("wechat callback retried key=%s", message.dedupe_key)
            return web.Response(text=SUCCESS)
        verdict = await self._flood(message)
        if verdict is Verdict.DROP:
            return web.Response(text=SUCCESS)
        try:
            await self._touch(message)
        except UNAVAILABLE as exc:
            log.warning("wechat follower not recorded error=%s", type(exc).__name__)
        if verdict is Verdict.WARN:  # once per window; the follower's row is kept meanwhile
            return self._passive(message, render("common/flood.j2"), query)
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

    # -- before the conversation ------------------------------------------------------------

    async def _flood(self, message: WeChatMessage) -> Verdict:
        """Count what would reach the core against its sender's window (FLOOD_LIMIT)."""
        if message.msg_type not in USER_MESSAGES and message.event not in CONVERSING_EVENTS:
            return Verdict.ALLOW  # unfollowing, views, job reports: bookkeeping only
        verdict = await self.flood.hit(f"{CHANNEL}:{message.from_user}")
        if verdict is not Verdict.ALLOW:  # counted as the router counts the other channels'
            metrics.UPDATES.labels(CHANNEL, "flooded").inc()
        if verdict is Verdict.WARN:
            log.info("flood guard engaged chat=%s", message.from_user)
        return verdict

    async def _touch(self, message: WeChatMessage) -> None:
        """Record what the callback says about its sender (most say nothing new: no write)."""
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
            return
        async with self.db.transaction() as session:
            await wechat.touch(session, openid, **change)
            if message.event == "unsubscribe":
                await outbox.mark_unreachable(session, Recipient(CHANNEL, openid))
        if message.scene:
            log.info("wechat follower source chat=%s scene=%s", openid, message.scene)

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
                composed = compose(replies, self.sender.links.linker(incoming.user))
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
