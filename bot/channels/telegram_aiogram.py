"""The aiogram stack (TELEGRAM_LIBRARY=aiogram): Bot API calls over aiogram's aiohttp session.

aiogram's session supplies the one shared aiohttp ClientSession (its connection pool) and
its JSON codec, `TelegramAPIServer` the URLs. Requests are written as plain JSON and
answers read as JSON: aiogram's method and type models are not built per call, which is
what a send through `Bot` spends most of its time on. Translation is bot/channels/telegram.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
import pydantic

from bot.channels.telegram_api import BotApiUnavailable, parse_answer


@contextmanager
def _models_left_unbuilt() -> Iterator[None]:
    """Import aiogram without completing its pydantic models.

    `aiogram/__init__` imports every type and method model, and `aiogram.types` then calls
    `model_rebuild` on each of its ~440 types, building their validators although they are
    declared `defer_build`: ≈ 107 MB of the process and ≈ 2 s of its start. This adapter
    builds no aiogram model (JSON in, JSON out), so those rebuilds are skipped while aiogram
    is imported; aiogram's models are therefore NOT usable in a process that runs this stack
    (validating one fails). Other models' rebuilds are untouched."""
    rebuild = pydantic.BaseModel.__dict__["model_rebuild"]

    def skip_aiogram(cls: type[pydantic.BaseModel], **options: Any) -> bool | None:
        if cls.__module__.startswith("aiogram."):
            return None
        result: bool | None = rebuild.__func__(cls, **options)
        return result

    pydantic.BaseModel.model_rebuild = classmethod(skip_aiogram)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        pydantic.BaseModel.model_rebuild = rebuild  # type: ignore[method-assign]


with _models_left_unbuilt():
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

TIMEOUT = 30.0  # seconds for a call other than a long poll
CONNECTIONS = 100  # aiogram's default pool size


class AiogramBotApi:
    """The `BotApi` of bot/channels/telegram.py on aiogram's session."""

    def __init__(self, token: str, api_url: str) -> None:
        self.token = token
        self.server = TelegramAPIServer.from_base(api_url)
        self.session = AiohttpSession(api=self.server, limit=CONNECTIONS)

    async def call(self, method: str, params: dict[str, Any], seconds: float | None = None) -> Any:
        http = await self.session.create_session()
        body = orjson.dumps(params)
        return await self._request(http, method, seconds, data=body, headers=_JSON)

    async def upload(
        self, method: str, params: dict[str, Any], field: str, name: str, content: bytes
    ) -> Any:
        form = aiohttp.FormData(quote_fields=False)
        for key, value in params.items():
            form.add_field(key, value if isinstance(value, str) else json.dumps(value))
        form.add_field(field, content, filename=name)
        http = await self.session.create_session()
        return await self._request(http, method, None, data=form)

    async def download(self, file_path: str) -> bytes:
        http = await self.session.create_session()
        url = self.server.file_url(self.token, file_path)
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as response:
                if response.status != 200:
                    raise BotApiUnavailable(f"file download HTTP {response.status}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotApiUnavailable(type(exc).__name__) from exc

    async def close(self) -> None:
        await self.session.close()

    async def _request(
        self, http: aiohttp.ClientSession, method: str, seconds: float | None, **request: Any
    ) -> Any:
        url = self.server.api_url(self.token, method)
        limit = aiohttp.ClientTimeout(total=seconds or TIMEOUT)
        try:
            async with http.post(url, timeout=limit, **request) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotApiUnavailable(type(exc).__name__) from exc
        return parse_answer(status, body)


_JSON = {"Content-Type": "application/json"}
