"""The Bot API as the Telegram channel sees it, whichever HTTP client carries it: the calls
(`BotApi`), the two ways a call fails, and reading an answer. The client modules
(telegram_ptb.py, telegram_aiogram.py) and the channel (telegram.py) share it."""

from __future__ import annotations

from typing import Any, Protocol

import orjson


class BotApiError(Exception):
    """The Bot API answered `ok: false` (4xx): its error code and description."""

    def __init__(self, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code, self.description, self.retry_after = code, description, retry_after


class BotApiUnavailable(Exception):
    """No answer, a timeout or a 5xx: the call may succeed if tried again."""


class BotApi(Protocol):
    """One bot's Bot API over some HTTP client: JSON in, the `result` JSON out."""

    async def call(self, method: str, params: dict[str, Any], seconds: float | None = None) -> Any:
        """Call `method`; raises BotApiError or BotApiUnavailable."""
        ...

    async def upload(
        self, method: str, params: dict[str, Any], field: str, name: str, content: bytes
    ) -> Any:
        """Call `method` as multipart with one file in `field`."""
        ...

    async def download(self, file_path: str) -> bytes:
        """The content of a file that getFile returned `file_path` for."""
        ...

    async def close(self) -> None: ...


def parse_answer(status: int, body: bytes) -> Any:
    """The `result` of a Bot API answer, or the matching exception."""
    try:
        answer = orjson.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise BotApiUnavailable(f"HTTP {status}: not a Bot API answer")
    if answer.get("ok"):
        return answer.get("result")
    code = int(answer.get("error_code") or status)
    description = str(answer.get("description") or "")
    if code >= 500:
        raise BotApiUnavailable(f"{code} {description}")
    retry_after = (answer.get("parameters") or {}).get("retry_after")
    raise BotApiError(code, description, float(retry_after) if retry_after is not None else None)
