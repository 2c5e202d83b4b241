"""The websockets open in this process, by web chat id (a visitor may have several tabs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from aiohttp import web


class Hub:
    def __init__(self) -> None:
        self._sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.connected = asyncio.Event()  # set when a chat connects: deliver its notices now

    def add(self, chat_id: str, ws: web.WebSocketResponse) -> None:
        self._sockets[chat_id].add(ws)
        self.connected.set()

    def remove(self, chat_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(chat_id)
        if sockets is None:
            return
        sockets.discard(ws)
        if not sockets:
            del self._sockets[chat_id]

    def chat_ids(self) -> set[str]:
        return set(self._sockets)

    @property
    def count(self) -> int:
        return sum(len(sockets) for sockets in self._sockets.values())

    async def send(self, chat_id: str, payload: dict[str, Any]) -> int:
        """Send to every open socket of the chat; returns how many took it."""
        delivered = 0
        for ws in list(self._sockets.get(chat_id, ())):
            if ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(payload)
                delivered += 1
        return delivered

    async def close_all(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close()
