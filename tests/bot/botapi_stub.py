"""A Telegram Bot API stub on 127.0.0.1: records what the bot sends, feeds it updates.

Answers with Telegram's JSON shapes ({"ok": true, "result": …}); failures (429 with
retry_after, 403 blocked) can be injected per method and chat. `limit_flood()` enforces
Telegram's limits (30 messages a second in total, one a second per chat) with 429s, counted
in `flood_429s`. Several bot tokens can be accepted (`add_token`), one per worker process, so
a test can hold one worker's sends (`hold`) and kill it mid-batch. Used by the end-to-end
tests and by the benchmarks in bench/.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token-for-the-stub"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "帮代办助手", "username": "bdb_test_bot"}
JSON_FIELDS = {"reply_markup", "commands", "scope", "allowed_updates", "link_preview_options"}
SENDS = {"sendMessage", "sendDocument", "sendPhoto"}  # what Telegram's flood limits count


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 200  # what the stub answered
    token: str = TOKEN

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id", ""))

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def buttons(self) -> list[dict[str, str]]:
        markup = self.params.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]


@dataclass
class Failure:
    method: str
    chat_id: str | None
    times: int
    status: int
    body: dict[str, Any]


@dataclass
class FloodLimits:
    """Telegram's limits on sends: in any second, `per_second` in total and one per chat."""

    per_second: int = 30
    chat_interval: float = 1.0


@dataclass
class Hold:
    """Sends of one token wait once it has had `after` sends accepted, until released."""

    after: int
    released: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False  # released held calls are answered 502 and not delivered
    held: int = 0


def too_many_requests(retry_after: int = 1) -> tuple[int, dict[str, Any]]:
    return 429, {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


def blocked() -> tuple[int, dict[str, Any]]:
    return 403, {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }


def bad_request(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


class BotApiStub:
    """The Bot API of one bot; `base_url` goes into TELEGRAM_API_URL."""

    def __init__(self, token: str = TOKEN, record: bool = True) -> None:
        self.token = token
        self.tokens = {token}
        self.record = record
        self.flood: FloodLimits | None = None
        self.strict_text = True  # refuse what Telegram refuses: > 4,096 characters, bad HTML
        self.refused_text = 0
        self.flood_429s = 0
        self.accepted: Counter[str] = Counter()  # sends answered 200, per token
        self._recent: deque[float] = deque()  # when the sends of the last second were accepted
        self._chat_last: dict[str, float] = {}
        self._holds: dict[str, Hold] = {}
        self.calls: list[Call] = []
        self.listeners: list[Callable[[Call], None]] = []
        self.failures: list[Failure] = []
        self.base_url = ""
        self._updates: list[dict[str, Any]] = []
        self._update_id = 0
        self._message_id = 1000
        self._new_update = asyncio.Event()
        self._messages: dict[tuple[str, int], tuple[str, Any]] = {}
        self._files: dict[str, tuple[str, bytes]] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._activity = asyncio.Event()

    # -- server ----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def close(self) -> None:
        self._closing = True
        self._new_update.set()  # end pending long polls now rather than at their timeout
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what users do -------------------------------------------------------------------------

    def push(self, kind: str, payload: dict[str, Any]) -> int:
        self._update_id += 1
        self._updates.append({"update_id": self._update_id, kind: payload})
        self._new_update.set()
        return self._update_id

    def user_message(self, chat_id: int, **content: Any) -> int:
        self._message_id += 1
        message = {
            "message_id": self._message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "用户"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "用户"},
            **content,
        }
        return self.push("message", message)

    def user_says(self, chat_id: int, text: str) -> int:
        return self.user_message(chat_id, text=text)

    def user_uploads(self, chat_id: int, name: str, content: bytes, mime: str) -> int:
        file_id = f"file-{len(self._files) + 1}"
        self._files[file_id] = (f"documents/{name}", content)
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": mime,
            "file_size": len(content),
        }
        return self.user_message(chat_id, document=document)

    def user_sends_sticker(self, chat_id: int) -> int:
        sticker = {
            "file_id": "sticker-1",
            "file_unique_id": "usticker-1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self.user_message(chat_id, sticker=sticker)

    def user_presses(self, chat_id: int, message_id: int, data: str) -> int:
        self._message_id += 1
        query = {
            "id": f"cq-{self._message_id}",
            "from": {"id": chat_id, "is_bot": False, "first_name": "用户"},
            "chat_instance": f"ci-{chat_id}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "用户"},
                "from": BOT_USER,
                "text": self._messages.get((str(chat_id), message_id), ("…", None))[0],
            },
        }
        return self.push("callback_query", query)

    def fail(
        self,
        method: str,
        error: tuple[int, dict[str, Any]],
        chat_id: int | str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`) with this error."""
        status, body = error
        chat = None if chat_id is None else str(chat_id)
        self.failures.append(Failure(method, chat, times, status, body))

    def limit_flood(self, per_second: int = 30, chat_interval: float = 1.0) -> None:
        """Answer sends beyond Telegram's limits with 429 and retry_after (`flood_429s`)."""
        self.flood = FloodLimits(per_second, chat_interval)

    def add_token(self, token: str) -> None:
        """Accept another token for this bot (tests tell worker processes apart by it)."""
        self.tokens.add(token)

    def hold(self, token: str, after: int = 0) -> Hold:
        """Keep the sends of `token` unanswered once it has had `after` sends accepted."""
        hold = self._holds[token] = Hold(after)
        return hold

    def release(self, token: str, fail: bool = False) -> None:
        """Answer the held sends of `token` (with 502 when `fail`) and stop holding."""
        hold = self._holds.pop(token, None)
        if hold is not None:
            hold.fail = fail
            hold.released.set()

    def held(self, token: str) -> int:
        hold = self._holds.get(token)
        return hold.held if hold is not None else 0

    # -- what the bot did ----------------------------------------------------------------------

    def sent(self, chat_id: int | str | None = None, method: str | None = None) -> list[Call]:
        """Successful calls that showed something to a user (sends, edits), oldest first."""
        shown = {"sendMessage", "sendDocument", "editMessageText"}
        return [
            call
            for call in self.calls
            if (call.method in shown if method is None else call.method == method)
            and call.status == 200
            and (chat_id is None or call.chat_id == str(chat_id))
        ]

    async def wait_until(self, condition: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until `condition()` holds, re-checking after every call the bot makes."""
        async with asyncio.timeout(seconds):
            while not condition():
                self._activity.clear()
                await self._activity.wait()

    def called(self, method: str) -> list[Call]:
        """Every call of `method`, answered with an error or not."""
        return [call for call in self.calls if call.method == method]

    # -- handlers --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token not in self.tokens:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params, files = await _read_params(request)
        call = Call(method, params, files, token=token)
        if method in SENDS and not await self._wait_if_held(call):
            call.status = 502
            body = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            response = web.json_response(body, status=502)
        elif (failure := self._failure(call) or self._flooded(call)) is not None:
            call.status = failure.status
            response = web.json_response(failure.body, status=failure.status)
        elif (handler := getattr(self, f"_m_{method}", None)) is None:
            call.status = 404
            body = {"ok": False, "error_code": 404, "description": "Not Found"}
            response = web.json_response(body, status=404)
        else:
            try:
                result = await handler(call)
                response = web.json_response({"ok": True, "result": result})
                if method in SENDS:
                    self.accepted[token] += 1
            except _ApiError as exc:
                call.status = exc.status
                response = web.json_response(exc.body, status=exc.status)
        if method != "getUpdates":  # recorded once answered, with the message id it got
            if self.record:
                self.calls.append(call)
            for listener in self.listeners:
                listener(call)
            self._activity.set()
        return response

    async def _wait_if_held(self, call: Call) -> bool:
        """False when the call was held and then failed: it never reached the user."""
        hold = self._holds.get(call.token)
        if hold is None or self.accepted[call.token] < hold.after:
            return True
        hold.held += 1
        self._activity.set()
        await hold.released.wait()
        return not hold.fail

    def _flooded(self, call: Call) -> Failure | None:
        """A 429 when this send would break the flood limits; else it is counted as sent."""
        if self.flood is None or call.method not in SENDS:
            return None
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        wait = 0.0
        if len(self._recent) >= self.flood.per_second:
            wait = self._recent[0] + 1.0 - now
        last = self._chat_last.get(call.chat_id)
        if last is not None and now - last < self.flood.chat_interval:
            wait = max(wait, last + self.flood.chat_interval - now)
        if wait > 0:
            self.flood_429s += 1
            status, body = too_many_requests(max(1, math.ceil(wait)))
            return Failure(call.method, call.chat_id, 1, status, body)
        self._recent.append(now)
        self._chat_last[call.chat_id] = now
        return None

    def _failure(self, call: Call) -> Failure | None:
        for failure in self.failures:
            if failure.method == call.method and failure.chat_id in (None, call.chat_id):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        for stored_path, content in self._files.values():
            if stored_path == path:
                return web.Response(body=content)
        return web.Response(status=404)

    async def _m_getMe(self, call: Call) -> Any:
        return BOT_USER

    async def _m_getUpdates(self, call: Call) -> Any:
        offset = int(call.params.get("offset") or 0)
        limit = int(call.params.get("limit") or 100)
        timeout = float(call.params.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout and not self._closing:
            self._new_update.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._new_update.wait()
            except TimeoutError:
                return []
        return self._updates[:limit]

    async def _m_deleteWebhook(self, call: Call) -> Any:
        return True

    async def _m_setWebhook(self, call: Call) -> Any:
        return True

    async def _m_setMyCommands(self, call: Call) -> Any:
        return True

    async def _m_answerCallbackQuery(self, call: Call) -> Any:
        return True

    async def _m_sendChatAction(self, call: Call) -> Any:
        return True

    def _refuse_unshowable(self, call: Call, text: str, limit: int) -> None:
        """Telegram's 400s for text it cannot show: too long, or HTML it cannot parse."""
        if not self.strict_text:
            return
        problem = html_problem(text) if call.params.get("parse_mode") == "HTML" else None
        if problem is not None:
            self.refused_text += 1
            raise _ApiError(*bad_request(f"can't parse entities: {problem}"))
        if shown_length(text, call.params.get("parse_mode")) > limit:
            self.refused_text += 1
            raise _ApiError(*bad_request("message is too long"))

    async def _m_sendMessage(self, call: Call) -> Any:
        self._refuse_unshowable(call, str(call.params["text"]), TEXT_LIMIT)
        return self._store(call, {"text": call.params["text"]})

    async def _m_sendDocument(self, call: Call) -> Any:
        self._refuse_unshowable(call, str(call.params.get("caption") or ""), CAPTION_LIMIT)
        name, content = call.files.get("document", ("document", b""))
        document = {
            "file_id": f"sent-{self._message_id}",
            "file_unique_id": f"usent-{self._message_id}",
            "file_name": name,
            "file_size": len(content),
        }
        extra = {"document": document}
        if call.params.get("caption"):
            extra["caption"] = call.params["caption"]
        return self._store(call, extra)

    async def _m_editMessageText(self, call: Call) -> Any:
        key = (call.chat_id, int(call.params["message_id"]))
        if key not in self._messages:
            raise _ApiError(*bad_request("message to edit not found"))
        self._refuse_unshowable(call, str(call.params["text"]), TEXT_LIMIT)
        new = (call.params["text"], call.params.get("reply_markup"))
        if self._messages[key] == new:
            raise _ApiError(
                *bad_request(
                    "message is not modified: specified new message content and reply "
                    "markup are exactly the same as a current content and reply markup "
                    "of the message"
                )
            )
        self._messages[key] = new
        return self._message(call.chat_id, key[1], {"text": new[0]})

    async def _m_getFile(self, call: Call) -> Any:
        file_id = str(call.params["file_id"])
        if file_id not in self._files:
            raise _ApiError(*bad_request("invalid file_id"))
        path, content = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    def _store(self, call: Call, extra: dict[str, Any]) -> dict[str, Any]:
        self._message_id += 1
        text = call.params.get("text") or call.params.get("caption") or ""
        self._messages[(call.chat_id, self._message_id)] = (text, call.params.get("reply_markup"))
        call.params["message_id"] = self._message_id  # so tests can press its buttons
        return self._message(call.chat_id, self._message_id, extra)

    def _message(self, chat_id: str, message_id: int, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": "private", "first_name": "用户"},
            "from": BOT_USER,
            **extra,
        }


TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
TELEGRAM_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip


class _TelegramHtml(HTMLParser):
    """The subset of HTML the Bot API accepts: known tags, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problem = self.problem or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problem = self.problem or f'Unexpected end tag "{tag}"'


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse `text` with parse_mode HTML, or None."""
    if re.search(r"<(?![a-zA-Z/])", text):
        return "Unsupported start tag"
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.problem is None and parser.stack:
        return f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    return parser.problem


def shown_length(text: str, parse_mode: str | None) -> int:
    """The length Telegram checks: after entity parsing, in UTF-16 code units."""
    if parse_mode == "HTML":
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return len(text.encode("utf-16-le")) // 2


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("description"))
        self.status, self.body = status, body


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    params: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            name = getattr(part, "name", None)
            if name is None:
                continue
            filename = getattr(part, "filename", None)
            payload = await part.read()  # type: ignore[union-attr]
            if filename:
                files[name] = (filename, bytes(payload))
            else:
                params[name] = bytes(payload).decode()
    elif request.can_read_body:
        if request.content_type == "application/json":
            params = dict(await request.json())
        else:
            params = dict(await request.post())
    params.update(request.query)
    for key, value in list(params.items()):  # aiogram uploads as "attach://<part name>"
        if isinstance(value, str) and value.startswith("attach://"):
            part = value.removeprefix("attach://")
            if part in files:
                files[key] = files.pop(part)
    for key in JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            params[key] = json.loads(params[key])
    return params, files
