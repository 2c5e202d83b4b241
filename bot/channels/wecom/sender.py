"""Messages out to staff in WeCom: outbox notices (channel "wecom") and replies.

A notice with buttons goes as a template card whose task id is derived from its outbox row,
so a retried row sends the same card again — and WeCom's duplicate check drops it. Cards are
recorded before they are sent (what each button key means stays on the server) and their
response code after. 81013 (not visible to the app) marks the person unreachable on WeCom
and tells the administrators, once; 45009 backs off through the outbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable

from bot.channels.downloads import DownloadLinks
from bot.channels.wecom.api import NOT_VISIBLE, RateLimited, WeChatApiError, WeComApi
from bot.channels.wecom.cards import Card, Outgoing, compose
from bot.outbox import Rejected, RetryLater, Unreachable, delivering
from chat.events import Button, ChatUser, Document, Reply
from dialogs.texts import render
from handlers.context import Services
from handlers.routing import SHOWN
from services import notify
from storage import wecom
from storage.models import OutboxMessage

log = logging.getLogger(__name__)
CHANNEL = wecom.CHANNEL


def task_id_for(row: OutboxMessage | None) -> str:
    """The card's task id: the same for every attempt at one outbox row (≤ 128 bytes)."""
    if row is None:
        return f"bdb-r-{secrets.token_hex(12)}"
    digest = hashlib.sha256(row.idempotency_key.encode()).hexdigest()[:32]
    return f"bdb-{row.id}-{digest}"


class WeComSender:
    """The outbox's Sender for channel "wecom", and the path of replies in the app's chat."""

    def __init__(
        self, api: WeComApi, services: Services, links: DownloadLinks | None, desk_url: str
    ) -> None:
        self.api, self.services, self.links, self.desk_url = api, services, links, desk_url

    def linker(self, userid: str) -> Callable[[Document], str]:
        """Links made for this member (their downloads are audited as theirs)."""
        if self.links is None:
            return lambda _: self.desk_url
        return self.links.linker(ChatUser(CHANNEL, userid))

    # -- the outbox (bot/outbox.py Sender) ------------------------------------------------

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        row = delivering.get()
        async with self.services.db.sessions() as session:
            if await wecom.unreachable(session, chat_id):
                raise Unreachable(f"{NOT_VISIBLE} not visible to the app")
        task = task_id_for(row)
        out = compose(
            [Reply(text, buttons, document)], self.linker(chat_id), self.desk_url, lambda: task
        )
        notice = wecom.notice_of(row.idempotency_key) if row is not None else task
        try:
            await self.deliver(chat_id, out, notice)
        except RateLimited as exc:
            raise RetryLater(exc.seconds) from exc
        except WeChatApiError as exc:
            if exc.code == NOT_VISIBLE:
                await self.not_visible(chat_id)
                raise Unreachable(f"{exc.code} {exc.message}") from exc
            raise Rejected(f"{exc.code} {exc.message}") from exc
        if out.shown:  # numbered options of a text notice: typing the number presses it
            async with self.services.state.conversation(f"{CHANNEL}:{chat_id}") as memory:
                memory[SHOWN] = [[b.label, b.data] for b in out.shown]

    async def deliver(self, userid: str, out: Outgoing, notice: str | None = None) -> None:
        """Send the step's texts and cards in order; a notice (`notice` given) once only."""
        once = notice is not None
        for message in out.messages:
            if isinstance(message, Card):
                await self._card(userid, message, notice or message.task_id, once)
            else:
                await self.api.send_text(userid, message, once)

    async def _card(self, userid: str, card: Card, notice: str, once: bool) -> None:
        saved = [{"label": b.label, "data": b.data} for b in card.buttons]
        async with self.services.db.transaction() as session:
            await wecom.record_card(session, card.task_id, userid, notice, saved)
        code = await self.api.send_card(userid, card.body, once)
        async with self.services.db.transaction() as session:
            await wecom.card_sent(session, card.task_id, code)

    async def not_visible(self, userid: str) -> None:
        """WeCom no longer shows this person the app: stop notices there, tell the admins."""
        async with self.services.db.transaction() as session:
            staff = await wecom.set_unreachable(session, userid)
            if staff is None:
                return
            text = render("wecom/unreachable_admin.j2", staff=staff)
            for admin in await wecom.admins(session):
                key = f"wecom:unreachable:{staff.id}:{userid}"
                notify.to_staff(session, admin, text, key)
        log.warning("wecom member not visible to the app staff=%s", staff.id)

    # -- replies ---------------------------------------------------------------------------

    async def reply(self, userid: str, replies: list[Reply], tries: int = 3) -> None:
        """The answer to a member's message or press, in the app's chat."""
        out = compose(replies, self.linker(userid), self.desk_url, lambda: task_id_for(None))
        for attempt in range(1, tries + 1):
            try:
                await self.deliver(userid, out)
                return
            except RateLimited as exc:
                wait = min(exc.seconds, 5.0 * attempt)
            except WeChatApiError as exc:
                if exc.code == NOT_VISIBLE:
                    await self.not_visible(userid)
                log.warning("wecom reply not delivered chat=%s code=%s", userid, exc.code)
                return
            except Exception as exc:
                log.warning("wecom reply failed chat=%s error=%s", userid, type(exc).__name__)
                wait = 1.0 * attempt
            await asyncio.sleep(wait)
        log.warning("wecom reply given up chat=%s", userid)
