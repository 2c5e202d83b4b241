"""The python-telegram-bot stack (TELEGRAM_LIBRARY=ptb): Bot API calls over PTB's transport.

PTB's `Bot` holds the configuration (token, API and file URLs) and its transport, a
`BaseRequest`. A JSON call — every send, edit and poll — is written as JSON straight onto
that transport and its answer read by bot/channels/telegram.py's `parse_answer`, as the
aiogram stack does: `Bot.do_api_request` converted every parameter and wrapped every answer
(≈ 9 % of an outbox worker's CPU in a py-spy profile, besides the request itself). Uploads and
downloads go through `Bot`, whose errors are translated here into the errors of
bot/channels/telegram.py. No PTB objects are built per update or per send.

The HTTP transport is PTB's own extension point, a `BaseRequest`, here over one aiohttp
ClientSession: PTB's default (httpx) spent most of a loaded bot's time in httpcore scanning
its connection pool on every request (bench/telegram_bench.py, docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
from telegram import Bot, InputFile
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, RequestData
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from bot.channels.telegram_api import BotApiError, BotApiUnavailable, parse_answer

# do_api_request (uploads) suggests Bot.send_document & co.: those build PTB objects from
# every answer, the per-call cost this stack avoids. RetryAfter warns while PTB moves to timedelta.
warnings.filterwarnings("ignore", r"Please use 'Bot\.", PTBUserWarning)
warnings.filterwarnings("ignore", r".*`retry_after` will be", PTBDeprecationWarning)

_JSON = {"Content-Type": "application/json"}
TIMEOUT = 30.0  # seconds for a call other than a long poll
CONNECTIONS = 100  # requests at once; more wait for a free connection


class AiohttpRequest(BaseRequest):
    """PTB's networking backend over one aiohttp ClientSession."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return TIMEOUT

    async def post_json(self, url: str, body: bytes, seconds: float) -> tuple[int, bytes]:
        """POST a JSON body; the HTTP status and the answer's bytes."""
        try:
            async with self._client().post(
                url, data=body, headers=_JSON, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotApiUnavailable(type(exc).__name__) from exc

    async def initialize(self) -> None:
        self._client()

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections)
            # The Bot API sets no cookies: no jar to match every request against.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        seconds = read_timeout if isinstance(read_timeout, int | float) else TIMEOUT
        data: Any = None
        headers = {}
        if request_data is not None and request_data.contains_files:
            data = aiohttp.FormData(request_data.json_parameters, quote_fields=False)
            for name, (filename, content, mime) in request_data.multipart_data.items():
                data.add_field(name, content, filename=filename, content_type=mime)
        elif request_data is not None:  # JSON: no form encoding of Chinese text and markup
            data = orjson.dumps(request_data.parameters)
            headers = _JSON
        try:
            async with self._client().request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


class PtbBotApi:
    """The `BotApi` of bot/channels/telegram.py on python-telegram-bot."""

    def __init__(self, token: str, api_url: str) -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.requests = AiohttpRequest(CONNECTIONS)
        self.polling = AiohttpRequest(2)  # a long poll never waits for a free connection
        self.bot = Bot(
            token,
            base_url=f"{self.api_url}/bot",
            base_file_url=f"{self.api_url}/file/bot",
            request=self.requests,
            get_updates_request=self.polling,
        )

    async def call(self, method: str, params: dict[str, Any], seconds: float | None = None) -> Any:
        request = self.polling if method == "getUpdates" else self.requests
        url = f"{self.bot.base_url}/{method}"
        body = orjson.dumps(params)
        status, answer = await request.post_json(url, body, seconds or TIMEOUT)
        return parse_answer(status, answer)

    async def upload(
        self, method: str, params: dict[str, Any], field: str, name: str, content: bytes
    ) -> Any:
        files = {field: InputFile(content, filename=name, attach=True)}
        with _translated():
            return await self.bot.do_api_request(method, api_kwargs={**params, **files})

    async def download(self, file_path: str) -> bytes:
        url = f"{self.api_url}/file/bot{self.token}/{file_path}"
        with _translated():
            return await self.bot.request.retrieve(url)

    async def close(self) -> None:
        for request in (self.requests, self.polling):
            await request.shutdown()


@contextmanager
def _translated() -> Iterator[None]:
    """PTB's errors as the errors of bot/channels/telegram.py."""
    try:
        yield
    except RetryAfter as exc:
        raise BotApiError(429, exc.message, _seconds(exc)) from exc
    except Forbidden as exc:
        raise BotApiError(403, exc.message) from exc
    except (BadRequest, ChatMigrated) as exc:
        raise BotApiError(400, exc.message) from exc
    except InvalidToken as exc:
        raise BotApiError(401, exc.message) from exc
    except Conflict as exc:
        raise BotApiError(409, exc.message) from exc
    except NetworkError as exc:  # timeouts and 5xx answers too
        raise BotApiUnavailable(exc.message) from exc
    except TelegramError as exc:
        raise BotApiError(400, exc.message) from exc


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns while it moves from int to timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
