"""Notices for the web chat: outbox rows of channel "web" go to the visitor's open sockets;
rows of a closed page stay pending until it reconnects, then arrive in order, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.channels.web.hub import Hub
from storage import outbox, staff_devices, web_history
from storage.db import Database
from storage.models import OutboxMessage

log = logging.getLogger(__name__)
CHANNEL = "web"
CHUNK = 500  # chat ids per claim query
Render = Callable[[OutboxMessage], Awaitable[dict[str, Any]]]


class NoticeDelivery:
    """Claims the pending rows of the chats connected to this process and sends them."""

    def __init__(self, db: Database, hub: Hub, render: Render, poll_interval: float = 1.0):
        self.db, self.hub, self.render = db, hub, render
        self.poll_interval = poll_interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_once()
            except Exception as exc:  # the database is down: try again on the next tick
                log.warning("web notice delivery failed error=%s", type(exc).__name__)
            self.hub.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hub.connected.wait(), self.poll_interval)

    async def deliver_once(self) -> int:
        """Deliver what is pending for the connected chats; returns how many were sent."""
        await self.sign_out_revoked()
        chat_ids = sorted(self.hub.chat_ids())
        sent = 0
        for start in range(0, len(chat_ids), CHUNK):
            sent += await self._deliver(set(chat_ids[start : start + CHUNK]))
        return sent

    async def sign_out_revoked(self) -> None:
        """Close the sockets of staff browsers signed out since (revoked from the chat, the CLI
        or another instance; expired), every tick and before any notice could reach them."""
        chat_ids = self.hub.chat_ids()
        devices = self.hub.devices(chat_ids)
        if not devices:
            return
        async with self.db.sessions() as session:
            live = await staff_devices.live(session, devices)
        if live != devices:
            await self.hub.sign_out(live, chat_ids)

    async def _deliver(self, chat_ids: set[str]) -> int:
        async with self.db.transaction() as session:
            rows = await outbox.claim_for_chats(session, CHANNEL, chat_ids)
            sent: list[int] = []
            failed: set[str] = set()  # keep a chat's order: nothing after a failed row
            for row in rows:
                if row.chat_id in failed:
                    continue
                payload = await self.render(row)
                if await self.hub.send(row.chat_id, {"type": "message", "message": payload}):
                    sent.append(row.id)
                    web_history.append(session, row.chat_id, [payload])
                else:
                    failed.add(row.chat_id)
            await outbox.mark_sent(session, sent)
        if sent:
            log.info("web notices delivered count=%s", len(sent))
        return len(sent)
