"""The web chat's shared state, made once per web application: what the page's request
handlers (server.py) and the staff desk (desk.py) both reach through `CHANNEL_KEY`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.app import App
from bot.channels.downloads import client_address
from bot.channels.web import render
from bot.channels.web.history import HistoryWriter
from bot.channels.web.hub import Hub
from bot.channels.web.identity import COOKIE, COOKIE_MAX_AGE, Identity
from bot.channels.web.staff_session import STAFF_COOKIE, StaffSession, StaffSessions
from bot.config import Settings
from chat.events import Button, Document, Incoming, Reply
from dialogs.texts import render as render_text
from services import documents, report
from storage import files
from storage.models import OutboxMessage
from storage.ratelimit import FloodGuard
from storage.state import Window

log = logging.getLogger(__name__)
# 长辈模式 as app.js remembers it for the server, so the chat page comes already enlarged
# (its script is deferred: applying the mode there would flash the normal size first).
ELDER_COOKIE = "bdb_elder"


@dataclass
class WebChannel:
    """Everything the request handlers share, made once per web application."""

    app: App
    settings: Settings
    identity: Identity
    chat_guard: FloodGuard
    ip_guard: FloodGuard
    history: HistoryWriter
    staff: StaffSessions
    hub: Hub = field(default_factory=Hub)

    # -- who is asking ------------------------------------------------------------------

    def chat_id(self, request: web.Request) -> str | None:
        return self.identity.chat_id(request.cookies.get(COOKIE))

    async def visitor(self, request: web.Request) -> tuple[str | None, StaffSession | None]:
        """The chat of this browser: a signed-in staff member's, else the visitor's own."""
        signed_in = await self.staff.check(request.cookies.get(STAFF_COOKIE))
        if signed_in is not None:
            return signed_in.chat_id, signed_in
        return self.chat_id(request), None

    @staticmethod
    def elder(request: web.Request) -> bool:
        return request.cookies.get(ELDER_COOKIE) == "1"

    def client_ip(self, request: web.Request) -> str:
        return client_address(request, self.settings.web_trust_proxy)

    def is_https(self, request: web.Request) -> bool:
        proto = request.headers.get("X-Forwarded-Proto", "")
        return request.secure or (self.settings.web_trust_proxy and proto == "https")

    def origin_ok(self, request: web.Request) -> bool:
        """The page's own host (or a configured origin) opened this socket or sent this POST."""
        origin = request.headers.get("Origin")
        if not origin:
            return False
        allowed = {request.host}
        if self.settings.web_trust_proxy and "X-Forwarded-Host" in request.headers:
            allowed.add(request.headers["X-Forwarded-Host"].split(",")[0].strip())
        extra = [o for o in self.settings.web_origins.split(",") if o.strip()]
        allowed |= {urlsplit(o.strip()).netloc for o in [*extra, self.settings.web_url]}
        return urlsplit(origin).netloc in allowed

    def set_cookie(self, request: web.Request, response: web.StreamResponse, chat_id: str) -> None:
        response.set_cookie(
            COOKIE,
            self.identity.cookie_value(chat_id),
            max_age=COOKIE_MAX_AGE,
            path=self.settings.web_base_path or "/",
            httponly=True,
            samesite="Lax",
            secure=self.is_https(request),
        )

    # -- conversation -------------------------------------------------------------------

    async def converse(
        self,
        chat_id: str,
        incoming: Incoming,
        echo: str | None,
        also: Sequence[Window] = (),
        sender: web.WebSocketResponse | None = None,
    ) -> None:
        """Run one message through the core; its answer goes to each of the visitor's tabs in
        one frame: the replies to `sender` (the tab that sent it drew its own message), the
        echo and the replies to the others.

        `Flooded` (nothing sent) when over one of `also`'s windows (the sender's address)."""
        # Counted against the chat's flood window in the conversation's own Redis round trip:
        # over the limit, the warning once, then no reply (the answer frame has none).
        replies = await self.app.router.handle(incoming, self.chat_guard, also=also)
        own = [render.own_message(echo)] if echo is not None else []
        answer = [await self.reply_payload(chat_id, reply) for reply in replies]
        # Kept before it is sent: a reload right after the answer reads it back (the socket
        # handler flushes the history first), whatever this task is waiting on meanwhile.
        self.history.add(chat_id, [*own, *answer])
        await self.hub.answer(chat_id, sender, own, answer)

    async def push(self, chat_id: str, payload: dict[str, Any]) -> None:
        await self.hub.send(chat_id, {"type": "message", "message": payload})

    async def reply_payload(self, chat_id: str, reply: Reply) -> dict[str, Any]:
        links = []
        if reply.document is not None:
            links.append(await self.document_link(chat_id, reply.document))
        return render.bot_message(reply.text, reply.buttons, links, expects_text=reply.expects_text)

    async def document_link(self, chat_id: str, document: Document) -> dict[str, str]:
        """A file the core sent, kept by hash and offered by a link only this chat can open."""
        root = self.app.services.files_dir
        sha256 = await asyncio.to_thread(files.write_blob, root, document.content)
        token = self.identity.file_token(
            chat_id, sha256, document.name, document.mime, document.case_number
        )
        return {"label": document.name, "href": f"file/{token}"}

    async def notice_payload(self, row: OutboxMessage) -> dict[str, Any]:
        """An outbox row as a message; its document becomes download links."""
        buttons = [[_button(b) for b in line] for line in row.buttons]
        links = _form_links(row.document, self)
        message = render.bot_message(row.text, buttons, links, at=row.created_at)
        message["notice"] = True
        return message


def _button(data: dict[str, Any]) -> Button:
    return Button(str(data["label"]), str(data["data"]))


def _form_links(spec: dict[str, Any] | None, channel: WebChannel) -> list[dict[str, str]]:
    if spec and spec.get("render") == report.REPORT:  # staff only: the route checks who
        month, fmt = str(spec.get("month", "")), str(spec.get("format", "docx"))
        name = report.file_name(month, fmt)
        return [{"label": name, "href": f"desk/report/{quote(month)}.{quote(fmt)}"}]
    if not spec or spec.get("render") != documents.FORM:
        return []
    number = str(spec.get("case", ""))
    formats = ["docx", "pdf"] if channel.app.services.form_font else ["docx"]
    return [
        {"label": render_text("web/form_link.j2", fmt=fmt), "href": f"form/{number}.{fmt}"}
        for fmt in formats
    ]


CHANNEL_KEY = web.AppKey("web_channel", WebChannel)


def channel_of(request: web.Request) -> WebChannel:
    return request.app[CHANNEL_KEY]
