"""The terminal chat: lines in, replies out; buttons print as numbered options."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from rich.console import Console

from bot.channels.options import option_line, pick, plain
from chat.events import Button, ChatUser, Incoming, Reply
from handlers.routing import Router
from services import documents
from storage import outbox
from storage.db import Database
from storage.outbox import Recipient

CHANNEL = "console"


class ConsoleChat:
    """One person chatting in the terminal; also shows the outbox notices addressed to them."""

    def __init__(
        self,
        router: Router,
        db: Database,
        user: ChatUser,
        downloads: Path,
        console: Console | None = None,
    ) -> None:
        self.router, self.db, self.user = router, db, user
        self.downloads = downloads
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.buttons: list[Button] = []

    def to_incoming(self, line: str) -> Incoming:
        """A number or a button's label presses that button; anything else is typed text."""
        button = pick(line, self.buttons)
        if button is not None:
            return Incoming.press(self.user, button.data)
        return Incoming.say(self.user, line.rstrip("\n"))

    async def send(self, line: str) -> list[Reply]:
        replies = await self.router.handle(self.to_incoming(line))
        self.show(replies)
        await self.deliver_notices()
        return replies

    def show(self, replies: list[Reply]) -> None:
        shown: list[Button] = []
        for reply in replies:
            if reply.text:
                self.console.print(plain(reply.text), markup=False)
            if reply.document is not None:
                path = self.save(reply.document.name, reply.document.content)
                self.console.print(f"📎 {path}", markup=False)
            for row in reply.buttons:
                self.console.print(option_line(row, shown), markup=False, style="cyan")
            self.console.print()
        if shown:
            self.buttons = shown

    def save(self, name: str, content: bytes) -> Path:
        self.downloads.mkdir(parents=True, exist_ok=True)
        path = self.downloads / Path(name).name
        path.write_bytes(content)
        return path

    async def deliver_notices(self) -> None:
        """Show the outbox rows addressed to this console user, then mark them sent."""
        async with self.db.transaction() as session:
            pending = await outbox.pending_for(session, Recipient(CHANNEL, self.user.chat_id))
            for message in pending:
                self.console.print("🔔 " + plain(message.text), markup=False, style="yellow")
                if message.document:
                    document = await documents.resolve(self.router.services, message.document)
                    if document is not None:
                        path = self.save(document.name, document.content)
                        self.console.print(f"📎 {path}", markup=False)
                self.console.print()
            await outbox.mark_sent(session, [m.id for m in pending])

    async def run(
        self, stream: TextIO = sys.stdin, prompt: Callable[[], None] | None = None
    ) -> None:
        """Read lines until EOF; each line is one message."""
        await self.deliver_notices()
        while True:
            if prompt is not None:
                prompt()
            line = await asyncio.to_thread(stream.readline)
            if not line:
                return
            if line.strip() in {"/quit", "/exit"}:
                return
            await self.send(line)
