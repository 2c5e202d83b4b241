"""The `/wecom` callback: WeCom's server posts each member's message, menu click and card
press here, encrypted with the app's EncodingAESKey (the WeChat framing; the receive id is
the CorpID) and signed with its Token.

Checks come first (msg_signature, freshness, size, decryption, the app), then the retry
guard (MsgId; events by member, time and card), then who is writing: only an active staff
member's UserID reaches the core — anyone else gets a polite refusal, except `/bind CODE`.
The HTTP answer is empty and prompt; replies go out as app messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.channels.wechat.crypto import CryptoError, MessageCrypto
from bot.channels.wecom.api import WeChatApiError, WeComApi
from bot.channels.wecom.messages import BadMessage, WeComMessage, fields
from bot.channels.wecom.sender import CHANNEL, WeComSender
from chat.events import ChatUser, Incoming, Kind, Reply
from dialogs.texts import render
from handlers.routing import UNAVAILABLE, Router
from storage import wecom
from storage.db import Database
from storage.models import Staff
from storage.wechat import SeenCallbacks

log = logging.getLogger(__name__)
MAX_AGE = 300  # seconds: an older (or replayed) callback is refused
USER_MESSAGES = frozenset({"text", "image", "voice", "video", "file", "location", "link"})
BIND = "/bind"


@dataclass(frozen=True)
class Signed:
    timestamp: str
    nonce: str
    msg_signature: str


class WeComCallback:
    def __init__(
        self,
        crypto: MessageCrypto,
        agent_id: int,
        router: Router,
        db: Database,
        api: WeComApi,
        sender: WeComSender,
        seen: SeenCallbacks,
        reply_within: float,
        body_limit: int,
    ) -> None:
        self.crypto, self.agent_id, self.router, self.db = crypto, agent_id, router, db
        self.api, self.sender, self.seen = api, sender, seen
        self.reply_within, self.body_limit = reply_within, body_limit
        self._later: set[asyncio.Task[None]] = set()

    # -- HTTP ---------------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """URL verification in the admin console: answer the decrypted echostr."""
        query = _fresh(request.query)
        echostr = request.query.get("echostr", "")
        if query is None or not echostr or len(echostr) > self.body_limit:
            return _refused(request, "verification")
        try:
            plain = self.crypto.decrypt(echostr, query.msg_signature, query.timestamp, query.nonce)
        except CryptoError as exc:
            return _refused(request, f"verification ({exc})")
        return web.Response(text=plain.decode(errors="replace"))

    async def receive(self, request: web.Request) -> web.Response:
        query = _fresh(request.query)
        if query is None:
            return _refused(request, "message")
        limit = self.body_limit
        if (request.content_length or 0) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=0)
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        try:
            envelope = fields(body)
            inner = self.crypto.decrypt(
                envelope.get("Encrypt", ""), query.msg_signature, query.timestamp, query.nonce
            )
            message = WeComMessage.parse(fields(inner))
        except CryptoError as exc:
            return _refused(request, f"encrypted message ({exc})")
        except BadMessage as exc:
            log.warning("wecom callback malformed error=%s", exc)
            raise web.HTTPBadRequest() from exc
        if message.agent_id and message.agent_id != str(self.agent_id):
            return _refused(request, "message for another app")
        try:
            fresh = await self.seen.first(message.dedupe_key)
        except UNAVAILABLE as exc:  # answer anyway: a retry is rarer than a lost message
            log.warning("wecom callback not recorded error=%s", type(exc).__name__)
            fresh = True
        if not fresh:
            log.info("wecom callback retried key=%s", message.dedupe_key)
            return web.Response(text="")
        task = asyncio.create_task(self.handle(message))
        self._later.add(task)
        task.add_done_callback(self._later.discard)
        # WeCom retries after 5 s: answer in time, and let a slow step finish behind it.
        await asyncio.wait({task}, timeout=self.reply_within)
        return web.Response(text="")

    async def close(self) -> None:
        if self._later:
            await asyncio.wait(self._later, timeout=10)

    # -- the conversation -------------------------------------------------------------------

    async def handle(self, message: WeComMessage) -> None:
        """Who is writing, then the core's answer (or the refusal) as app messages."""
        userid = message.from_user
        try:
            async with self.db.sessions() as session:
                staff = await wecom.staff_by_userid(session, userid)
            if staff is None and not self._binding(message):
                log.info("wecom message refused: not staff chat=%s", userid)
                replies = [Reply(render("wecom/not_staff.j2"))]
            else:
                if staff is not None and staff.wecom_unreachable:  # WeCom shows them the app
                    async with self.db.transaction() as session:
                        await wecom.set_reachable(session, userid)
                replies = await self.answer(message, staff)
        except Exception:
            log.exception("wecom message not handled chat=%s", userid)
            replies = [Reply(render("common/busy.j2"))]
        if replies:
            await self.sender.reply(userid, replies)

    def _binding(self, message: WeComMessage) -> bool:
        text = message.content.strip()
        return message.msg_type == "text" and (text == BIND or text.startswith(f"{BIND} "))

    async def answer(self, message: WeComMessage, staff: Staff | None) -> list[Reply]:
        user = ChatUser(CHANNEL, message.from_user)
        if message.is_card_press:
            return await self.press(message, user, staff) if staff is not None else []
        if message.msg_type == "text":
            return await self.router.handle(Incoming.say(user, message.content))
        if message.msg_type in USER_MESSAGES:
            return await self.router.handle(Incoming(user, Kind.UNSUPPORTED))
        if message.event == "click" and message.event_key.startswith("/"):
            return await self.router.handle(Incoming.say(user, message.event_key))
        return []  # entering the app, opening a menu link …: nothing to say

    async def press(self, message: WeComMessage, user: ChatUser, staff: Staff) -> list[Reply]:
        """A button on a card: the first person to act on a notice takes it and every copy
        of its card says so; a later press on another copy is told who did."""
        async with self.db.sessions() as session:
            card = await wecom.card(session, message.task_id)
        key = message.event_key
        if (
            card is None
            or card.userid != message.from_user
            or not key.isdigit()
            or int(key) >= len(card.buttons)
        ):
            log.info("wecom card press refused: unknown card or key chat=%s", user.chat_id)
            return [Reply(render("wecom/card_gone.j2"))]
        button = card.buttons[int(key)]
        action = str(button["label"])
        async with self.db.transaction() as session:
            won = await wecom.claim(session, card.notice, staff.id, action)
            first = await wecom.done(session, card.notice)
        assert first is not None
        await self.update_cards(card.notice, first, message)
        if not won and first.staff_id != staff.id:
            log.info("wecom late press by=%s first=%s", staff.id, first.staff_id)
            return [Reply(render("wecom/done_by.j2", name=first.name, action=first.label))]
        pressed = Incoming.press(user, str(button["data"]), message_id=card.task_id)
        return await self.router.handle(pressed)

    async def update_cards(self, notice: str, first: wecom.Done, message: WeComMessage) -> None:
        """Every copy of the notice's card not yet changed: one greyed button saying who did
        what (the pressed card by the press's code, the others by their send's)."""
        async with self.db.sessions() as session:
            cards = await wecom.to_update(session, notice)
        text = render("wecom/card_done.j2", name=first.name, action=first.label)
        updated = []
        for card in cards:
            code = message.response_code if card.task_id == message.task_id else card.response_code
            if not code:
                continue
            try:
                await self.api.update_card([card.userid], code, text)
            except WeChatApiError as exc:  # the code was used or is older than 72 h
                log.warning("wecom card not updated task=%s code=%s", card.task_id, exc.code)
            except Exception as exc:
                error = type(exc).__name__
                log.warning("wecom card update failed task=%s error=%s", card.task_id, error)
                continue
            updated.append(card.task_id)
        async with self.db.transaction() as session:
            await wecom.mark_updated(session, updated)


def _fresh(query: Mapping[str, str]) -> Signed | None:
    """The signature parts of a callback not older than MAX_AGE (checked on decryption)."""
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    signature = query.get("msg_signature", "")
    if not (timestamp.isdigit() and nonce and signature):
        return None
    if abs(time.time() - int(timestamp)) > MAX_AGE:
        return None
    return Signed(timestamp, nonce, signature)


def _refused(request: web.Request, what: str) -> web.Response:
    log.warning("wecom callback refused: bad signature or stale %s from=%s", what, request.remote)
    return web.Response(status=403, text="forbidden")
