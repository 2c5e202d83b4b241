"""Telegram: raw Bot API updates in as `Incoming`, the core's replies out as messages.

Translation only: what to answer is the router's decision. This module decides how to talk
to the Bot API — HTML parse mode, inline keyboards, edits in place, retries on 429 and
network errors, the flood guard, typing indicators — and how to run: long polling, or a
webhook behind a load balancer, with the outbox worker alongside.

Updates are read as the Bot API's JSON and requests are written as JSON: no framework
models are built per update or per send. The HTTP client is the selected stack's
(`TELEGRAM_LIBRARY`): aiogram's aiohttp session (bot/channels/telegram_aiogram.py) or
python-telegram-bot's httpx request (bot/channels/telegram_ptb.py). Both answer through
`BotApi` (bot/channels/telegram_api.py), so the translation below is shared by both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse

from aiohttp import web

from bot import ops
from bot.app import App, build_app
from bot.channels.telegram_api import BotApi, BotApiError, BotApiUnavailable
from bot.config import Settings, SettingsError
from bot.delivery import Delivery, scheduled_jobs, send_limiters
from bot.outbox import Rejected, RetryLater, Unreachable, WorkerConfig
from chat.events import Button, ChatUser, Document, Incoming, Kind, Reply, UploadedFile
from dialogs.fit import plain, split_html
from dialogs.texts import render
from handlers.routing import Router
from services import metrics
from storage import outbox
from storage.db import Database
from storage.outbox import Recipient
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard, Verdict

CHANNEL = "telegram"
log = logging.getLogger(__name__)
T = TypeVar("T")

CALLBACK_DATA_LIMIT = 64  # bytes, Bot API limit
CAPTION_LIMIT = 1024  # characters of a document caption
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the cloud Bot API serves files up to 20 MB
TYPING_AFTER = 0.5  # seconds of handling before "typing…" is shown
CONCURRENT_UPDATES = 512  # updates handled at once per process; polling waits beyond that
POLL_TIMEOUT = 25  # seconds a getUpdates long poll may wait
ALLOWED_UPDATES = ["message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NOT_EDITABLE = ("message is not modified", "message to edit not found", "can't be edited")
NO_PREVIEW = {"is_disabled": True}


# -- talking to the Bot API --------------------------------------------------------------


def build_bot(settings: Settings) -> BotApi:
    """The Bot API on TELEGRAM_API_URL through the TELEGRAM_LIBRARY stack."""
    if not settings.telegram_bot_token:
        raise SettingsError("TELEGRAM_BOT_TOKEN: not set")
    if settings.telegram_library == "ptb":
        from bot.channels.telegram_ptb import PtbBotApi

        return PtbBotApi(settings.telegram_bot_token, settings.telegram_api_url)
    from bot.channels.telegram_aiogram import AiogramBotApi

    return AiogramBotApi(settings.telegram_bot_token, settings.telegram_api_url)


def keyboard(rows: list[list[Button]]) -> dict[str, Any] | None:
    """Inline keyboard of the reply's buttons; data longer than Telegram allows is dropped."""
    markup: list[list[dict[str, str]]] = []
    for row in rows:
        cells = []
        for button in row:
            if len(button.data.encode()) > CALLBACK_DATA_LIMIT:
                log.error(
                    "button dropped: callback data over 64 bytes data_len=%s", len(button.data)
                )
                continue
            cells.append({"text": button.label, "callback_data": button.data})
        if cells:
            markup.append(cells)
    return {"inline_keyboard": markup} if markup else None


def html_text(chat_id: str, text: str, markup: dict[str, Any] | None) -> dict[str, Any]:
    """sendMessage/editMessageText parameters: HTML parse mode, no link previews."""
    params: dict[str, Any] = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": NO_PREVIEW,
    }
    if markup is not None:
        params["reply_markup"] = markup
    return params


class TelegramSender:
    """Sends replies and notices with Telegram's failure rules.

    429 waits `retry_after` and tries again (interactive replies are never dropped);
    network and 5xx errors retry with a bounded backoff; 403 raises Unreachable; 400 raises
    Rejected. The outbox worker calls `send` once and does its own rescheduling."""

    def __init__(self, api: BotApi, network_retries: int = 3, backoff: float = 0.5) -> None:
        self.api = api
        self.network_retries = network_retries
        self.backoff = backoff

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        """One attempt for the outbox worker (the Sender protocol of bot/outbox.py)."""
        try:
            await self._post(chat_id, Reply(text, buttons, document))
        except BotApiError as exc:
            if exc.code == 429:
                raise RetryLater(exc.retry_after or 1.0) from exc
            if exc.code == 403 or "chat not found" in exc.description.lower():
                raise Unreachable(exc.description) from exc
            if exc.code == 400:
                raise Rejected(exc.description) from exc
            raise

    async def deliver(self, chat_id: str, reply: Reply, edit_message_id: int | None) -> None:
        """Show one reply, editing `edit_message_id` in place when given; retries as above."""
        if edit_message_id is not None and reply.document is None:
            try:
                await self.retrying(lambda: self._edit(chat_id, edit_message_id, reply))
                return
            except BotApiError as exc:
                if not any(reason in exc.description.lower() for reason in NOT_EDITABLE):
                    raise
        await self.retrying(lambda: self._post(chat_id, reply))

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Bot API call, waiting out 429s and retrying network errors a few times."""
        failures = 0
        while True:
            try:
                return await call()
            except BotApiError as exc:
                if exc.code == 403:
                    raise Unreachable(exc.description) from exc
                if exc.code != 429:
                    raise
                log.info("telegram rate limited retry_after=%s", exc.retry_after)
                await asyncio.sleep(exc.retry_after or 1.0)
            except BotApiUnavailable as exc:
                failures += 1
                if failures > self.network_retries:
                    raise
                log.info("telegram unavailable error=%s attempt=%s", exc, failures)
                await asyncio.sleep(self.backoff * 2 ** (failures - 1))

    async def _post(self, chat_id: str, reply: Reply) -> None:
        markup = keyboard(reply.buttons)
        if reply.document is None:
            if reply.text:
                await self.api.call("sendMessage", html_text(chat_id, reply.text, markup))
            return
        caption = reply.text
        if len(caption) > CAPTION_LIMIT:  # too long for a caption: text first, then the file
            await self.api.call("sendMessage", html_text(chat_id, caption, None))
            caption = ""
        params: dict[str, Any] = {"chat_id": chat_id, "parse_mode": "HTML"}
        if caption:
            params["caption"] = caption
        if markup is not None:
            params["reply_markup"] = markup
        document = reply.document
        await self.api.upload("sendDocument", params, "document", document.name, document.content)

    async def _edit(self, chat_id: str, message_id: int, reply: Reply) -> None:
        params = html_text(chat_id, reply.text, keyboard(reply.buttons))
        params["message_id"] = message_id
        await self.api.call("editMessageText", params)


# -- the adapter --------------------------------------------------------------------------


class KeyedLock:
    """FIFO lock per key, forgotten when free: keeps one user's updates in arrival order
    within this process (the router's state lock still serialises across instances)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class InFlight:
    """Counts updates being handled, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def drained(self, seconds: float) -> bool:
        """Wait up to `seconds` for the updates in hand; False if some are still running."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def full_name(person: dict[str, Any] | None) -> str | None:
    if not person:
        return None
    return " ".join(p for p in (person.get("first_name"), person.get("last_name")) if p) or None


class TelegramChannel:
    """Turns raw updates into `Incoming` and the core's replies into messages."""

    def __init__(
        self,
        api: BotApi,
        router: Router,
        db: Database,
        flood: FloodGuard,
        typing_after: float = TYPING_AFTER,
        concurrency: int = CONCURRENT_UPDATES,
    ) -> None:
        self.api, self.router, self.db, self.flood = api, router, db, flood
        self.sender = TelegramSender(api)
        self.typing_after = typing_after
        self.inflight = InFlight()
        self._chats = KeyedLock()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        # Called with the update id once an update is fully handled (tests and benchmarks).
        self.on_update_done: Callable[[int], None] | None = None

    async def accept(self, update: dict[str, Any]) -> None:
        """Start handling one update; waits while `concurrency` updates are in hand.

        Tasks start in arrival order and take the per-chat lock first, so one user's
        updates are handled in the order they came."""
        await self._slots.acquire()
        self.inflight.__enter__()
        task = asyncio.create_task(self.handle_update(update))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        self.inflight.__exit__()

    async def handle_update(self, update: dict[str, Any]) -> None:
        try:
            if (message := update.get("message")) is not None:
                if message["chat"].get("type") == "private":
                    await self.on_message(message)
            elif (callback := update.get("callback_query")) is not None:
                await self.on_callback(callback)
        except Exception:
            log.exception("update failed update_id=%s", update.get("update_id"))
        finally:
            if self.on_update_done is not None:
                self.on_update_done(int(update.get("update_id", 0)))

    async def on_message(self, message: dict[str, Any]) -> None:
        chat_id = str(message["chat"]["id"])
        async with self._chats(chat_id):  # first await: keeps arrival order
            # A file is counted before it is downloaded; anything else with the state's lock,
            # in the same Redis round trip (the router's `flood`).
            flood: FloodGuard | None = self.flood
            if message.get("document") is not None or message.get("photo"):
                if await self._flooded(chat_id):
                    return
                flood = None
            try:
                incoming = await self.to_incoming(message)
            except Exception as exc:
                log.warning("download failed chat=%s error=%s", chat_id, type(exc).__name__)
                await self.send_replies(chat_id, [Reply(render("common/busy.j2"))])
                return
            await self._handle(chat_id, incoming, edit_message_id=None, flood=flood)

    async def on_callback(self, callback: dict[str, Any]) -> None:
        message = callback.get("message")
        sender = callback["from"]
        chat_id = str(message["chat"]["id"] if message else sender["id"])
        answered = asyncio.create_task(self._answer(str(callback["id"])))  # every query, at once
        try:
            async with self._chats(chat_id):
                message_id = int(message["message_id"]) if message else None
                user = ChatUser(CHANNEL, chat_id, full_name(sender))
                incoming = Incoming.press(
                    user, str(callback.get("data") or ""), str(message_id) if message_id else None
                )
                await self._handle(chat_id, incoming, message_id, self.flood)
        finally:
            await answered

    async def to_incoming(self, message: dict[str, Any]) -> Incoming:
        """The message as the core sees it; files are downloaded through the Bot API."""
        user = ChatUser(CHANNEL, str(message["chat"]["id"]), full_name(message.get("from")))
        if (text := message.get("text")) is not None:
            return Incoming.say(user, str(text))
        caption = str(message.get("caption") or "")
        has_file = message.get("document") is not None or bool(message.get("photo"))
        if has_file and not await self.router.expects_file(user):
            return Incoming(user, Kind.FILE, text=caption)  # the core refuses it; no download
        if (doc := message.get("document")) is not None:
            upload = await self._download(
                doc["file_id"],
                doc.get("file_name") or f"file_{doc['file_unique_id']}",
                doc.get("mime_type") or "application/octet-stream",
                doc.get("file_size"),
            )
        elif message.get("photo"):
            photo = message["photo"][-1]  # the largest size
            upload = await self._download(
                photo["file_id"],
                f"photo_{photo['file_unique_id']}.jpg",
                "image/jpeg",
                photo.get("file_size"),
            )
        else:
            return Incoming(user, Kind.UNSUPPORTED)
        if upload is None:
            return Incoming(user, Kind.UNSUPPORTED)
        return Incoming(user, Kind.FILE, text=caption, file=upload)

    async def _download(
        self, file_id: str, name: str, mime: str, size: int | None
    ) -> UploadedFile | None:
        if size is not None and size > self.router.services.uploads.caps.max_bytes:
            return UploadedFile(name, mime, size)  # the core refuses it by its size, unread
        if size is not None and size > DOWNLOAD_LIMIT:
            return None  # the Bot API will not serve it
        found = await self.sender.retrying(lambda: self.api.call("getFile", {"file_id": file_id}))
        path = str(found["file_path"])
        content = await self.sender.retrying(lambda: self.api.download(path))
        return UploadedFile(name=name, mime=mime, size=len(content), content=content)

    async def _handle(
        self,
        chat_id: str,
        incoming: Incoming,
        edit_message_id: int | None,
        flood: FloodGuard | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        typing: list[asyncio.Task[None]] = []
        timers: list[asyncio.TimerHandle] = []

        def opened() -> None:  # "typing…" counts from the open conversation, not Redis's queue
            timers.append(
                loop.call_later(
                    self.typing_after,
                    lambda: typing.append(asyncio.create_task(self._typing(chat_id))),
                )
            )

        try:
            replies = await self.router.handle(incoming, flood, opened)
        finally:
            for timer in timers:
                timer.cancel()
            for task in typing:
                task.cancel()
        await self.send_replies(chat_id, replies, edit_message_id)

    async def send_replies(
        self, chat_id: str, replies: list[Reply], edit_message_id: int | None = None
    ) -> None:
        """Send in order; the first replacing reply edits the pressed message."""
        for reply in replies:
            target = edit_message_id if reply.replace and reply.document is None else None
            try:
                await self.sender.deliver(chat_id, reply, target)
            except Unreachable:
                await self.mark_unreachable(chat_id)
                return
            except BotApiError as exc:
                if exc.code != 400:
                    log.warning("reply not delivered chat=%s code=%s", chat_id, exc.code)
                    return  # the rest would arrive out of context
                log.warning("reply refused chat=%s error=%s", chat_id, exc.description)
                if not await self._deliver_plain(chat_id, reply):
                    return
            except Exception as exc:
                log.warning("reply not delivered chat=%s error=%s", chat_id, type(exc).__name__)
                return  # the rest would arrive out of context
            if target is not None:
                edit_message_id = None

    async def _deliver_plain(self, chat_id: str, reply: Reply) -> bool:
        """A refused reply again as plain text in parts, else the apology; False if neither."""
        parts = [Reply(part) for part in split_html(plain(reply.text))]
        parts[-1].buttons, parts[-1].document = reply.buttons, reply.document
        apology = [Reply(render("common/undeliverable.j2"))]
        for instead, fallback in (("plain", parts), ("apology", apology)):
            try:
                for part in fallback:
                    await self.sender.deliver(chat_id, part, None)
                metrics.REFUSED.labels(CHANNEL, "reply", instead).inc()
                return True
            except Exception as exc:
                log.warning("reply fallback refused chat=%s error=%s", chat_id, type(exc).__name__)
        metrics.REFUSED.labels(CHANNEL, "reply", "nothing").inc()
        return False

    async def mark_unreachable(self, chat_id: str) -> None:
        log.info("user blocked the bot chat=%s", chat_id)
        try:
            async with self.db.transaction() as session:
                await outbox.mark_unreachable(session, Recipient(CHANNEL, chat_id))
        except Exception as exc:
            log.warning("could not mark unreachable chat=%s error=%s", chat_id, type(exc).__name__)

    async def _flooded(self, chat_id: str) -> bool:
        verdict = await self.flood.hit(f"{CHANNEL}:{chat_id}")
        if verdict is Verdict.WARN:
            log.info("flood guard engaged chat=%s", chat_id)
            await self.send_replies(chat_id, [Reply(render("common/flood.j2"))])
        return verdict is not Verdict.ALLOW

    async def _answer(self, callback_id: str) -> None:
        try:
            await self.sender.retrying(
                lambda: self.api.call("answerCallbackQuery", {"callback_query_id": callback_id})
            )
        except Exception as exc:  # too old or network gone: nothing the user can be shown
            log.info("callback not answered error=%s", type(exc).__name__)

    async def _typing(self, chat_id: str) -> None:
        with contextlib.suppress(Exception):
            while True:  # Telegram shows the action for about 5 s
                await self.api.call("sendChatAction", {"chat_id": chat_id, "action": "typing"})
                await asyncio.sleep(4.5)


# -- running --------------------------------------------------------------------------------


def bot_commands() -> list[dict[str, str]]:
    """The command menu, from dialogs/templates/common/commands.j2."""
    commands = []
    for line in render("common/commands.j2").splitlines():
        command, _, description = line.strip().partition(" ")
        if command and description:
            commands.append({"command": command, "description": description.strip()})
    return commands


def build_flood_guard(settings: Settings, app: App) -> FloodGuard:
    state = app.services.state
    if state.redis is not None:  # share the app's one bounded pool
        return RedisFloodGuard(
            state.redis, settings.flood_limit, settings.flood_window_seconds, state.prefix
        )
    return MemoryFloodGuard(settings.flood_limit, settings.flood_window_seconds)


class TelegramService:
    """One bot process: polling or webhook, plus the outbox worker for this channel."""

    def __init__(
        self,
        settings: Settings,
        app: App,
        *,
        worker: WorkerConfig | None = None,
        run_worker: bool = True,
        drain_timeout: float = 25.0,
    ) -> None:
        if settings.webhook_url and not settings.webhook_secret:
            raise SettingsError("WEBHOOK_SECRET: required when WEBHOOK_URL is set")
        self.settings, self.app = settings, app
        self.api = build_bot(settings)
        self.channel = TelegramChannel(
            self.api, app.router, app.services.db, build_flood_guard(settings, app)
        )
        self.delivery = (
            Delivery(
                app.services,
                {CHANNEL: self.channel.sender},
                send_limiters(settings, app.services.state, [CHANNEL]),
                config=worker,
                jobs=scheduled_jobs(settings),
            )
            if run_worker
            else None
        )
        self.drain_timeout = drain_timeout
        self.webhook_address: tuple[str, int] | None = None
        self._stop_worker = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._polling: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Register the command menu, start receiving updates and the outbox worker."""
        commands = {"commands": bot_commands(), "scope": {"type": "default"}}
        await self.channel.sender.retrying(lambda: self.api.call("setMyCommands", commands))
        if self.settings.webhook_url:
            await self._start_webhook(self.settings.webhook_url)
        else:
            await self.channel.sender.retrying(
                lambda: self.api.call("deleteWebhook", {"drop_pending_updates": False})
            )
            self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
        if self.delivery is not None:
            self._tasks.append(
                asyncio.create_task(self.delivery.run(self._stop_worker), name="delivery")
            )

    async def _poll(self) -> None:
        """Long polling: each batch of updates is handed over in order, as raw JSON."""
        offset = 0
        failures = 0
        while True:
            params = {"offset": offset, "timeout": POLL_TIMEOUT, "allowed_updates": ALLOWED_UPDATES}
            try:
                updates = await self.api.call("getUpdates", params, seconds=POLL_TIMEOUT + 10)
                failures = 0
            except BotApiError as exc:
                if exc.code in (401, 404):  # the token was revoked: polling ends
                    log.error("polling stopped: %s", exc)
                    return
                failures += 1
                log.warning("polling failed code=%s", exc.code)
                await asyncio.sleep(exc.retry_after or min(2**failures, 30))
                continue
            except BotApiUnavailable as exc:
                failures += 1
                log.warning("polling failed error=%s", exc)
                await asyncio.sleep(min(0.5 * 2**failures, 30))
                continue
            for update in updates:
                await self.channel.accept(update)  # may wait for a free slot
                offset = int(update["update_id"]) + 1  # handed over: the next poll confirms it

    async def _webhook(self, request: web.Request) -> web.Response:
        secret = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(secret.encode(), str(self.settings.webhook_secret).encode()):
            return web.Response(status=401)
        try:
            update = json.loads(await request.read())
        except ValueError:
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            log.warning("webhook body refused: not a Telegram update")
            return web.Response(status=400)
        await self.channel.accept(update)
        return web.Response()

    async def _start_webhook(self, url: str) -> None:
        web_app = web.Application()
        web_app.router.add_post(urlparse(url).path or "/", self._webhook)
        web_app.router.add_get("/healthz", _healthz)
        self._runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(
            self._runner, self.settings.webhook_host, self.settings.webhook_port
        )
        await self._site.start()
        host, port = self._runner.addresses[0][:2]
        self.webhook_address = (str(host), int(port))
        params = {
            "url": url,
            "secret_token": self.settings.webhook_secret,
            "allowed_updates": ALLOWED_UPDATES,
        }
        await self.channel.sender.retrying(lambda: self.api.call("setWebhook", params))
        log.info("webhook listening port=%s", port)

    async def wait(self) -> None:
        """Return when polling ends by itself (e.g. a revoked token); webhooks run on."""
        if self._polling is not None:
            await asyncio.wait({self._polling})  # waiting must not cancel the polling task
        else:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        """Stop taking updates, finish the ones in hand, then stop the worker and the bot."""
        if self._site is not None:
            await self._site.stop()
        if self._polling is not None and not self._polling.done():
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._polling
        if not await self.channel.inflight.drained(self.drain_timeout):
            log.warning("shutdown with updates in hand count=%s", self.channel.inflight.count)
        self._stop_worker.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, self.drain_timeout)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.api.close()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@asynccontextmanager
async def running(settings: Settings, app: App, **options: Any) -> AsyncIterator[TelegramService]:
    """A started service, stopped gracefully on exit."""
    service = TelegramService(settings, app, **options)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def serve(settings: Settings) -> None:
    """`bangdaiban run`: serve Telegram until SIGTERM/SIGINT, finishing updates in hand;
    with RUN_WORKER (the default) this process delivers the outbox and schedules as well."""
    app = await build_app(settings)
    stop = ops.stop_on_signals()
    started = time.monotonic()
    watch = asyncio.create_task(ops.watch_calendar(stop))
    try:
        async with (
            ops.serving(settings, app),
            running(settings, app, run_worker=settings.run_worker) as service,
        ):
            mode = "webhook" if settings.webhook_url else "polling"
            log.info(
                "telegram bot started mode=%s library=%s worker=%s",
                mode,
                settings.telegram_library,
                settings.run_worker,
            )
            stopping = asyncio.create_task(stop.wait())
            ended = asyncio.create_task(service.wait())
            await asyncio.wait({stopping, ended}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stopping, ended):
                task.cancel()
            log.info("telegram bot stopping after=%.0fs", time.monotonic() - started)
    finally:
        stop.set()
        await watch
        await app.close()
