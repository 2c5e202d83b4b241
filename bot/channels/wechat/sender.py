"""Messages out to WeChat users: replies and outbox notices, within WeChat's windows.

A customer-service message reaches a user only within 48 hours of their last message (and
five times at most); after that only a template (or subscription) notice does, and only
where the operator configured one for that kind of notice. Anything else is undeliverable
on WeChat: the row is given up with a count, never retried forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter

from bot.channels.downloads import DownloadLinks
from bot.channels.wechat.api import (
    NOT_FOLLOWING,
    OUT_OF_WINDOW,
    RateLimited,
    WeChatApi,
    WeChatApiError,
)
from bot.channels.wechat.compose import Composed, compose, notice_kind, template_data
from bot.config import Settings
from bot.outbox import Rejected, RetryLater, Undeliverable, Unreachable, delivering
from chat.events import Button, ChatUser, Document, Reply
from handlers.context import Services
from storage import wechat
from storage.models import utcnow

log = logging.getLogger(__name__)
CHANNEL = wechat.CHANNEL
WINDOW = dt.timedelta(hours=48)
CHINA = dt.timezone(dt.timedelta(hours=8))


def options_key(openid: str) -> str:
    """Where the options last shown to a user are kept (their numbers mean these buttons)."""
    return f"wechat-options:{openid}"


class WeChatSender:
    """The outbox's Sender for channel "wechat", and the customer-service path for replies."""

    def __init__(
        self, api: WeChatApi, services: Services, settings: Settings, links: DownloadLinks
    ) -> None:
        self.api, self.services, self.settings, self.links = api, services, settings, links
        self.undeliverable: Counter[str] = Counter()  # notice kind → rows given up

    # -- the outbox (bot/outbox.py Sender) ------------------------------------------------

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        row = delivering.get()
        kind = notice_kind(row.idempotency_key if row is not None else "", buttons)
        composed = compose(
            [Reply(text, buttons, document)], self.links.linker(ChatUser(CHANNEL, chat_id))
        )
        try:
            if await self.in_window(chat_id):
                try:
                    await self.customer_service(chat_id, composed)
                    return
                except WeChatApiError as exc:
                    if exc.code not in OUT_OF_WINDOW:
                        raise
                    if not self.template_for(kind):
                        raise Unreachable(f"{exc.code} out of the customer-service window") from exc
            await self.template_notice(chat_id, kind, text, document)
        except RateLimited as exc:
            raise RetryLater(exc.seconds) from exc
        except WeChatApiError as exc:
            if exc.code in NOT_FOLLOWING:
                raise Unreachable(f"{exc.code} {exc.message}") from exc
            raise Rejected(f"{exc.code} {exc.message}") from exc

    async def in_window(self, openid: str) -> bool:
        async with self.services.db.sessions() as session:
            follower = await wechat.follower(session, openid)
        last = follower.last_message_at if follower is not None else None
        return last is not None and utcnow() - last < WINDOW

    def template_for(self, kind: str) -> str | None:
        return self.settings.wechat_templates.get(kind) or None

    async def template_notice(
        self, openid: str, kind: str, text: str, document: Document | None
    ) -> None:
        template_id = self.template_for(kind)
        if template_id is None:
            self.undeliverable[kind] += 1
            log.warning("wechat notice undeliverable kind=%s chat=%s", kind, openid)
            raise Undeliverable(
                f"{wechat.UNDELIVERABLE}: outside the 48-hour window, no {kind} template"
            )
        when = utcnow().astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        data = template_data(text, when, self.settings.wechat_notice_api)
        user = ChatUser(CHANNEL, openid)
        url = self.links.link(document, user) if document is not None else None
        if self.settings.wechat_notice_api == "subscribe":
            await self.api.send_subscribe(openid, template_id, data)
        else:
            await self.api.send_template(openid, template_id, data, url)
        log.info("wechat template notice sent kind=%s chat=%s", kind, openid)

    # -- replies ---------------------------------------------------------------------------

    async def customer_service(self, openid: str, composed: Composed) -> None:
        """Send the parts as customer-service messages; remember the options they number."""
        for part in composed.parts:
            await self.api.send_text(openid, part)
        if composed.buttons:
            await self.remember(openid, composed.buttons)

    async def remember(self, openid: str, buttons: list[Button]) -> None:
        saved = [{"label": b.label, "data": b.data} for b in buttons]
        async with self.services.state.conversation(options_key(openid)) as memory:
            memory["buttons"] = saved

    async def reply_later(self, openid: str, composed: Composed, tries: int = 3) -> None:
        """A reply that missed the passive window, by customer-service message."""
        for attempt in range(1, tries + 1):
            try:
                await self.customer_service(openid, composed)
                return
            except RateLimited as exc:
                wait = min(exc.seconds, 5.0 * attempt)
            except WeChatApiError as exc:
                log.warning("wechat reply not delivered chat=%s code=%s", openid, exc.code)
                return
            except Exception as exc:
                log.warning("wechat reply failed chat=%s error=%s", openid, type(exc).__name__)
                wait = 1.0 * attempt
            await asyncio.sleep(wait)
        log.warning("wechat reply given up chat=%s", openid)
