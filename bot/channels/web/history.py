"""Writes the web chat's history in batches: one transaction for the messages of many chats,
not one per message (a commit per message was most of a message's cost on SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from storage import web_history
from storage.db import Database

log = logging.getLogger(__name__)


class HistoryWriter:
    def __init__(self, db: Database, interval: float = 0.05) -> None:
        self.db, self.interval = db, interval
        self._pending: list[tuple[str, list[dict[str, Any]]]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def add(self, chat_id: str, payloads: list[dict[str, Any]]) -> None:
        if payloads:
            self._pending.append((chat_id, payloads))
            self._wake.set()

    async def flush(self) -> None:
        """Write everything added so far (before a chat's history is read back)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                async with self.db.transaction() as session:
                    await web_history.append_many(
                        session, [(chat_id, p) for chat_id, payloads in batch for p in payloads]
                    )
            except Exception:
                self._pending[:0] = batch  # keep them for the next try
                raise

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            await asyncio.sleep(self.interval)  # let a burst gather into one transaction
            try:
                await self.flush()
            except Exception as exc:
                log.warning("web history write failed error=%s", type(exc).__name__)
        await self.flush()
