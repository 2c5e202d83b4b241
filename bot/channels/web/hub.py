"""The websockets open in this process, by web chat id (a visitor may have several tabs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from aiohttp import web

SEND_TIMEOUT = 5.0  # seconds; a stalled client must not hold up notices for everyone else


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
            try:
                await asyncio.wait_for(ws.send_json(payload), SEND_TIMEOUT)
            except TimeoutError:
                await _drop(ws)  # the page reconnects and gets what it missed
            except (ConnectionError, RuntimeError):
                pass
            else:
                delivered += 1
        return delivered

    async def close_all(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close()


async def _drop(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), SEND_TIMEOUT)
