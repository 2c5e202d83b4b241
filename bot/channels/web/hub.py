"""The websockets open in this process, by web chat id (a visitor may have several tabs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import orjson
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
        sockets = [ws for ws in self._sockets.get(chat_id, ()) if not ws.closed]
        if not sockets:
            return 0
        frame = orjson.dumps(payload).decode()  # serialised once for all the chat's tabs
        return sum([await self._send_str(ws, frame) for ws in sockets])

    async def answer(
        self,
        chat_id: str,
        sender: web.WebSocketResponse | None,
        own: list[dict[str, Any]],
        replies: list[dict[str, Any]],
    ) -> None:
        """The complete answer to one message, one frame per tab: `sender` gets the replies
        ("answer": it drew its own message and now stops waiting); the chat's other tabs get
        the message and the replies ("messages": shown, nothing awaited). Without a sender
        (an upload's POST), every tab gets both as the answer."""
        sockets = [ws for ws in self._sockets.get(chat_id, ()) if not ws.closed]
        if not sockets:
            return
        whole = [*own, *replies]
        frames: dict[bool, str] = {}  # serialised once per kind, not per socket
        for ws in sockets:
            mine = sender is None or ws is sender
            frame = frames.get(mine)
            if frame is None:
                if sender is None:
                    payload = {"type": "answer", "messages": whole}
                elif mine:
                    payload = {"type": "answer", "messages": replies}
                else:
                    payload = {"type": "messages", "messages": whole}
                frame = frames[mine] = orjson.dumps(payload).decode()
            await self._send_str(ws, frame)

    async def _send_str(self, ws: web.WebSocketResponse, frame: str) -> bool:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):  # no task per frame, as wait_for makes
                await ws.send_str(frame)
        except TimeoutError:
            await _drop(ws)  # the page reconnects and gets what it missed
        except (ConnectionError, RuntimeError):
            pass
        else:
            return True
        return False

    async def close_all(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close()


async def _drop(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), SEND_TIMEOUT)
