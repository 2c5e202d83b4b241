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
        self._devices: dict[web.WebSocketResponse, int] = {}  # staff sockets: the bound browser
        self.connected = asyncio.Event()  # set when a chat connects: deliver its notices now

    def add(self, chat_id: str, ws: web.WebSocketResponse, device_id: int | None = None) -> None:
        self._sockets[chat_id].add(ws)
        if device_id is not None:
            self._devices[ws] = device_id
        self.connected.set()

    def devices(self, chat_ids: set[str]) -> set[int]:
        """The staff browsers with a socket open for these chats."""
        return {
            device
            for chat_id in chat_ids
            for ws in self._sockets.get(chat_id, ())
            if (device := self._devices.get(ws)) is not None
        }

    async def sign_out_device(self, device_id: int) -> None:
        """Close every socket of one staff browser (it was unbound here)."""
        chat_ids = self.chat_ids()
        await self.sign_out(self.devices(chat_ids) - {device_id}, chat_ids)

    async def sign_out(self, live: set[int], chat_ids: set[str]) -> None:
        """Close the sockets of these chats whose staff browser is no longer in `live`."""
        for chat_id in chat_ids:
            for ws in list(self._sockets.get(chat_id, ())):
                device = self._devices.get(ws)
                if device is None or device in live:
                    continue
                self.remove(chat_id, ws)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.send_json({"type": "signed_out"}), SEND_TIMEOUT)
                await _drop(ws)

    def remove(self, chat_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(chat_id)
        if sockets is None:
            return
        sockets.discard(ws)
        self._devices.pop(ws, None)
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
