"""Notices for the web chat: outbox rows of channel "web" go to the visitor's open sockets;
rows of a closed page stay pending until it reconnects, then arrive in order, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.web.hub import Hub
from storage import outbox, signals, staff_devices, web_history
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
        self.poll_interval = poll_interval  # the safety net; signals wake it at once
        self.instance = uuid.uuid4().hex[:12]
        self._mirroring: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._deliver_until(stop))]
        if not self.db.is_sqlite:  # one process on SQLite: nobody else to hear from
            handlers = {
                signals.WEB_PENDING: self._on_pending,
                signals.WEB_SENT: self._on_sent,
                signals.STAFF_SIGNED_OUT: self._on_signed_out,
            }
            tasks.append(asyncio.create_task(signals.listen(self.db.url, handlers, stop)))
        await asyncio.gather(*tasks)

    async def _deliver_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.hub.connected.clear()  # a wake-up during this pass runs the next one at once
            try:
                await self.deliver_once()
            except Exception as exc:  # the database is down: try again on the next tick
                log.warning("web notice delivery failed error=%s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self.hub.connected.wait(), stop.wait()), self.poll_interval
                )

    # -- signals from other processes ----------------------------------------------------

    def _on_pending(self, chat_id: str) -> None:
        if chat_id in self.hub.chat_ids():
            self.hub.connected.set()

    def _on_signed_out(self, device_id: str) -> None:
        if device_id.isdigit() and int(device_id) in self.hub.devices(self.hub.chat_ids()):
            self.hub.connected.set()  # the pass starts by closing revoked browsers

    def _on_sent(self, payload: str) -> None:
        instance, chat_id, ids = [*payload.split(" "), "", "", ""][:3]
        if instance == self.instance or chat_id not in self.hub.chat_ids():
            return
        numbers = [int(i) for i in ids.split(",") if i.isdigit()]
        task = asyncio.create_task(self.mirror(chat_id, numbers))
        self._mirroring.add(task)
        task.add_done_callback(self._mirroring.discard)

    async def mirror(self, chat_id: str, ids: list[int]) -> None:
        """Rows another process delivered to its tabs of this chat go to this process's tabs
        too (the other process wrote them to the history once)."""
        try:
            async with self.db.sessions() as session:
                rows = await outbox.by_ids(session, chat_id, ids)
            for row in rows:
                await self.hub.send(chat_id, {"type": "message", "message": await self.render(row)})
        except Exception as exc:  # the tab gets it from the history on its next load
            log.warning("web notice mirror failed error=%s", type(exc).__name__)

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

    async def _announce(
        self, session: AsyncSession, rows: list[OutboxMessage], sent: set[int]
    ) -> None:
        """Tell the other web processes which rows went out, so their tabs of the same chats
        show them too (at commit, PostgreSQL only)."""
        by_chat: dict[str, list[str]] = {}
        for row in rows:
            if row.id in sent:
                by_chat.setdefault(row.chat_id, []).append(str(row.id))
        for chat_id, ids in by_chat.items():
            payload = f"{self.instance} {chat_id} {','.join(ids)}"
            await signals.notify(session, signals.WEB_SENT, payload)

    async def _deliver(self, chat_ids: set[str]) -> int:
        async with self.db.transaction() as session:
            rows = await outbox.claim_for_chats(session, CHANNEL, chat_ids)
            # Checked after the claim: a revocation committed with (or before) these rows is
            # seen here, so no row reaches a browser signed out before it was written.
            receiving = {row.chat_id for row in rows}
            devices = self.hub.devices(receiving)
            if devices:
                live = await staff_devices.live(session, devices)
                if live != devices:
                    await self.hub.sign_out(live, receiving)
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
            await self._announce(session, rows, set(sent))
        if sent:
            log.info("web notices delivered count=%s", len(sent))
        return len(sent)


async def _first(*waits: Awaitable[Any]) -> None:
    """Return when the first of these completes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
