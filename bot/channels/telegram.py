"""Telegram (aiogram 3): updates in as `Incoming`, the core's replies out as messages.

Translation only: what to answer is the router's decision. This module decides how to talk
to the Bot API — HTML parse mode, inline keyboards, edits in place, retries on 429 and
network errors, the flood guard, typing indicators — and how to run: long polling, or a
webhook behind a load balancer, with the outbox worker alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction, ChatType, ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    BotCommand,
    BotCommandScopeDefault,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot import ops
from bot.app import App, build_app
from bot.config import Settings, SettingsError
from bot.delivery import Delivery, scheduled_jobs, send_limiters
from bot.outbox import Rejected, RetryLater, Unreachable, WorkerConfig
from dialogs.fit import plain, split_html
from dialogs.texts import render
from handlers.events import Button, ChatUser, Document, Incoming, Kind, Reply, UploadedFile
from handlers.routing import Router
from storage import outbox
from storage.db import Database
from storage.outbox import Recipient
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard, Verdict
from storage.state import RedisStateStore

CHANNEL = "telegram"
log = logging.getLogger(__name__)
T = TypeVar("T")

CALLBACK_DATA_LIMIT = 64  # bytes, Bot API limit
CAPTION_LIMIT = 1024  # characters of a document caption
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the cloud Bot API serves files up to 20 MB
TYPING_AFTER = 0.5  # seconds of handling before "typing…" is shown
CONCURRENT_UPDATES = 512  # updates handled at once per process; polling waits beyond that
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NOT_EDITABLE = ("message is not modified", "message to edit not found", "can't be edited")


# -- talking to the Bot API --------------------------------------------------------------


class PinnedSession(AiohttpSession):
    """aiogram parses each answer as `Response[T]`; pydantic caches such generic classes
    only weakly, so after a garbage collection every one is rebuilt (~15 ms of CPU each,
    the top cost under load). Keeping them referenced builds each once."""

    _pinned: ClassVar[dict[Any, Any]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._pinned:
            self._pinned[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


def build_bot(settings: Settings) -> Bot:
    """A Bot on TELEGRAM_API_URL (any Bot API server), HTML parse mode by default."""
    if not settings.telegram_bot_token:
        raise SettingsError("TELEGRAM_BOT_TOKEN: not set")
    session = PinnedSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(
        settings.telegram_bot_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def keyboard(rows: list[list[Button]]) -> InlineKeyboardMarkup | None:
    """Inline keyboard of the reply's buttons; data longer than Telegram allows is dropped."""
    markup: list[list[InlineKeyboardButton]] = []
    for row in rows:
        cells = []
        for button in row:
            if len(button.data.encode()) > CALLBACK_DATA_LIMIT:
                log.error(
                    "button dropped: callback data over 64 bytes data_len=%s", len(button.data)
                )
                continue
            cells.append(InlineKeyboardButton(text=button.label, callback_data=button.data))
        if cells:
            markup.append(cells)
    return InlineKeyboardMarkup(inline_keyboard=markup) if markup else None


class TelegramSender:
    """Sends replies and notices with Telegram's failure rules.

    429 waits `retry_after` and tries again (interactive replies are never dropped);
    network and 5xx errors retry with a bounded backoff; 403 raises Unreachable; 400 raises
    Rejected. The outbox worker calls `send` once and does its own rescheduling."""

    def __init__(self, bot: Bot, network_retries: int = 3, backoff: float = 0.5) -> None:
        self.bot = bot
        self.network_retries = network_retries
        self.backoff = backoff

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        """One attempt for the outbox worker (the Sender protocol of bot/outbox.py)."""
        try:
            await self._post(chat_id, Reply(text, buttons, document))
        except TelegramRetryAfter as exc:
            raise RetryLater(float(exc.retry_after)) from exc
        except TelegramForbiddenError as exc:
            raise Unreachable(exc.message) from exc
        except TelegramBadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Unreachable(exc.message) from exc
            raise Rejected(exc.message) from exc

    async def deliver(self, chat_id: str, reply: Reply, edit_message_id: int | None) -> None:
        """Show one reply, editing `edit_message_id` in place when given; retries as above."""
        if edit_message_id is not None and reply.document is None:
            try:
                await self.retrying(lambda: self._edit(chat_id, edit_message_id, reply))
                return
            except TelegramBadRequest as exc:
                if not any(reason in exc.message.lower() for reason in NOT_EDITABLE):
                    raise
        await self.retrying(lambda: self._post(chat_id, reply))

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Bot API call, waiting out 429s and retrying network errors a few times."""
        failures = 0
        while True:
            try:
                return await call()
            except TelegramRetryAfter as exc:
                log.info("telegram rate limited retry_after=%s", exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except TelegramForbiddenError as exc:
                raise Unreachable(exc.message) from exc
            except (TelegramNetworkError, TelegramServerError) as exc:
                failures += 1
                if failures > self.network_retries:
                    raise
                log.info("telegram network error=%s attempt=%s", type(exc).__name__, failures)
                await asyncio.sleep(self.backoff * 2 ** (failures - 1))

    async def _post(self, chat_id: str, reply: Reply) -> None:
        markup = keyboard(reply.buttons)
        if reply.document is None:
            if reply.text:
                await self.bot.send_message(chat_id, reply.text, reply_markup=markup)
            return
        caption = reply.text
        if len(caption) > CAPTION_LIMIT:  # too long for a caption: text first, then the file
            await self.bot.send_message(chat_id, caption)
            caption = ""
        upload = BufferedInputFile(reply.document.content, filename=reply.document.name)
        await self.bot.send_document(chat_id, upload, caption=caption or None, reply_markup=markup)

    async def _edit(self, chat_id: str, message_id: int, reply: Reply) -> None:
        await self.bot.edit_message_text(
            text=reply.text,
            chat_id=chat_id,
            message_id=message_id,
            reply_markup=keyboard(reply.buttons),
        )


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


class TelegramChannel:
    """aiogram handlers that turn updates into `Incoming` and replies into messages."""

    def __init__(
        self,
        bot: Bot,
        router: Router,
        db: Database,
        flood: FloodGuard,
        typing_after: float = TYPING_AFTER,
    ) -> None:
        self.bot, self.router, self.db, self.flood = bot, router, db, flood
        self.sender = TelegramSender(bot)
        self.typing_after = typing_after
        self.inflight = InFlight()
        self._chats = KeyedLock()
        # Called with the update id once an update is fully handled (tests and benchmarks).
        self.on_update_done: Callable[[int], None] | None = None

    def dispatcher(self) -> Dispatcher:
        dispatcher = Dispatcher()
        dispatcher.message.register(self.on_message, F.chat.type == ChatType.PRIVATE)
        dispatcher.callback_query.register(self.on_callback)
        return dispatcher

    async def on_message(self, message: Message, event_update: Update) -> None:
        chat_id = str(message.chat.id)
        with self.inflight:
            try:
                async with self._chats(chat_id):  # first await: keeps arrival order
                    if await self._flooded(chat_id):
                        return
                    try:
                        incoming = await self.to_incoming(message)
                    except Exception as exc:
                        log.warning("download failed chat=%s error=%s", chat_id, type(exc).__name__)
                        await self.send_replies(chat_id, [Reply(render("common/busy.j2"))])
                        return
                    await self._handle(chat_id, incoming, edit_message_id=None)
            finally:
                self._done(event_update)

    async def on_callback(self, callback: CallbackQuery, event_update: Update) -> None:
        message = callback.message
        chat_id = str(message.chat.id if message is not None else callback.from_user.id)
        answered = asyncio.create_task(self._answer(callback.id))  # every query, at once
        with self.inflight:
            try:
                async with self._chats(chat_id):
                    if await self._flooded(chat_id):
                        return
                    message_id = message.message_id if message is not None else None
                    user = ChatUser(CHANNEL, chat_id, callback.from_user.full_name)
                    incoming = Incoming.press(
                        user, callback.data or "", str(message_id) if message_id else None
                    )
                    await self._handle(chat_id, incoming, edit_message_id=message_id)
            finally:
                await answered
                self._done(event_update)

    async def to_incoming(self, message: Message) -> Incoming:
        """The message as the core sees it; files are downloaded through the Bot API."""
        name = message.from_user.full_name if message.from_user else None
        user = ChatUser(CHANNEL, str(message.chat.id), name)
        if message.text is not None:
            return Incoming.say(user, message.text)
        caption = message.caption or ""
        has_file = message.document is not None or bool(message.photo)
        if has_file and not await self.router.expects_file(user):
            return Incoming(user, Kind.FILE, text=caption)  # the core refuses it; no download
        if message.document is not None:
            doc = message.document
            upload = await self._download(
                doc.file_id,
                doc.file_name or f"file_{doc.file_unique_id}",
                doc.mime_type or "application/octet-stream",
                doc.file_size,
            )
        elif message.photo:
            photo = message.photo[-1]  # the largest size
            upload = await self._download(
                photo.file_id, f"photo_{photo.file_unique_id}.jpg", "image/jpeg", photo.file_size
            )
        else:
            return Incoming(user, Kind.UNSUPPORTED)
        if upload is None:
            return Incoming(user, Kind.UNSUPPORTED)
        return Incoming(user, Kind.FILE, text=caption, file=upload)

    async def _download(
        self, file_id: str, name: str, mime: str, size: int | None
    ) -> UploadedFile | None:
        if size is not None and size > DOWNLOAD_LIMIT:
            return None  # the Bot API will not serve it
        buffer = io.BytesIO()
        await self.sender.retrying(lambda: self.bot.download(file_id, destination=buffer))
        content = buffer.getvalue()
        return UploadedFile(name=name, mime=mime, size=len(content), content=content)

    async def _handle(self, chat_id: str, incoming: Incoming, edit_message_id: int | None) -> None:
        loop = asyncio.get_running_loop()
        typing: list[asyncio.Task[None]] = []
        timer = loop.call_later(
            self.typing_after, lambda: typing.append(asyncio.create_task(self._typing(chat_id)))
        )
        try:
            replies = await self.router.handle(incoming)
        finally:
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
            except TelegramBadRequest as exc:  # refused for good: the words, without markup
                log.warning("reply refused chat=%s error=%s", chat_id, exc.message)
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
        for fallback in (parts, [Reply(render("common/undeliverable.j2"))]):
            try:
                for part in fallback:
                    await self.sender.deliver(chat_id, part, None)
                return True
            except Exception as exc:
                log.warning("reply fallback refused chat=%s error=%s", chat_id, type(exc).__name__)
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
            await self.sender.retrying(lambda: self.bot.answer_callback_query(callback_id))
        except Exception as exc:  # too old or network gone: nothing the user can be shown
            log.info("callback not answered error=%s", type(exc).__name__)

    async def _typing(self, chat_id: str) -> None:
        with contextlib.suppress(Exception):
            while True:  # Telegram shows the action for about 5 s
                await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
                await asyncio.sleep(4.5)

    def _done(self, update: Update) -> None:
        if self.on_update_done is not None:
            self.on_update_done(update.update_id)


# -- running --------------------------------------------------------------------------------


def bot_commands() -> list[BotCommand]:
    """The command menu, from dialogs/templates/common/commands.j2."""
    commands = []
    for line in render("common/commands.j2").splitlines():
        command, _, description = line.strip().partition(" ")
        if command and description:
            commands.append(BotCommand(command=command, description=description.strip()))
    return commands


def build_flood_guard(settings: Settings, app: App) -> FloodGuard:
    state = app.services.state
    if isinstance(state, RedisStateStore):  # share the state store's bounded pool
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
        self.bot = build_bot(settings)
        self.channel = TelegramChannel(
            self.bot, app.router, app.services.db, build_flood_guard(settings, app)
        )
        self.dispatcher = self.channel.dispatcher()
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
        await self.channel.sender.retrying(
            lambda: self.bot.set_my_commands(bot_commands(), scope=BotCommandScopeDefault())
        )
        if self.settings.webhook_url:
            await self._start_webhook(self.settings.webhook_url)
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
        if self.delivery is not None:
            self._tasks.append(
                asyncio.create_task(self.delivery.run(self._stop_worker), name="delivery")
            )

    async def _poll(self) -> None:
        await self.dispatcher.start_polling(
            self.bot,
            handle_as_tasks=True,
            tasks_concurrency_limit=CONCURRENT_UPDATES,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=["message", "callback_query"],
        )

    async def _start_webhook(self, url: str) -> None:
        web_app = web.Application()
        handler = CheckedRequestHandler(
            self.dispatcher,
            self.bot,
            handle_in_background=True,
            secret_token=self.settings.webhook_secret,
        )
        web_app.router.add_post(urlparse(url).path or "/", handler.handle)
        web_app.router.add_get("/healthz", _healthz)
        self._runner = web.AppRunner(web_app, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(
            self._runner, self.settings.webhook_host, self.settings.webhook_port
        )
        await self._site.start()
        host, port = self._runner.addresses[0][:2]
        self.webhook_address = (str(host), int(port))
        await self.channel.sender.retrying(
            lambda: self.bot.set_webhook(
                url,
                secret_token=self.settings.webhook_secret,
                allowed_updates=["message", "callback_query"],
            )
        )
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
            with contextlib.suppress(RuntimeError):  # not started yet: cancelled below
                await self.dispatcher.stop_polling()
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
        await self.bot.session.close()


class CheckedRequestHandler(SimpleRequestHandler):
    """aiogram's webhook handler, answering 400 (and logging one line) to a body that is
    not a Telegram update instead of failing with 500 and a traceback."""

    async def handle(self, request: web.Request) -> web.Response:
        if self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            try:
                body = await request.json(loads=self.bot.session.json_loads)
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("update_id"), int):
                log.warning("webhook body refused: not a Telegram update")
                return web.Response(status=400, text="Bad Request")
        return await super().handle(request)


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
            log.info("telegram bot started mode=%s worker=%s", mode, settings.run_worker)
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
