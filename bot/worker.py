"""Delivery wired to the channels: the registry of outbox senders (one per configured
channel), delivery beside another process's work (RUN_WORKER), and `bangdaiban worker`.

Part of the composition root: the channel modules use bot/delivery.py, and only this module
(imported by the CLI) knows every channel, so delivery never imports a channel back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from bot import ops
from bot.app import App, build_app
from bot.config import Settings
from bot.delivery import Delivery, scheduled_jobs, send_limiters
from bot.outbox import Sender


@asynccontextmanager
async def channel_senders(settings: Settings, app: App) -> AsyncIterator[dict[str, Sender]]:
    """The outbox sender of every configured channel, closed on exit: the one place where a
    channel plugs into delivery. The web chat delivers its own rows to open pages."""
    async with AsyncExitStack() as stack:
        senders: dict[str, Sender] = {}
        if settings.telegram_bot_token:
            from bot.channels.telegram import CHANNEL, TelegramSender, build_bot

            bot = build_bot(settings)
            stack.push_async_callback(bot.close)
            senders[CHANNEL] = TelegramSender(bot)
        if settings.wechat_token:
            from bot.channels import wechat

            sender = wechat.build_sender(settings, app)
            stack.push_async_callback(sender.api.close)
            senders[wechat.CHANNEL] = sender
        if settings.wecom_corp_id:
            from bot.channels import wecom

            staff_sender = wecom.build_sender(settings, app)
            stack.push_async_callback(staff_sender.api.close)
            senders[wecom.CHANNEL] = staff_sender
        yield senders


@asynccontextmanager
async def background_delivery(settings: Settings, app: App) -> AsyncIterator[None]:
    """With RUN_WORKER, deliver every configured channel and run the scheduler beside this
    process's own work (the embedded single-process case); otherwise nothing."""
    if not settings.run_worker:
        yield
        return
    stop = asyncio.Event()
    async with channel_senders(settings, app) as senders:
        limiters = send_limiters(settings, app.services.state, list(senders))
        delivery = Delivery(app.services, senders, limiters, jobs=scheduled_jobs(settings))
        task = asyncio.create_task(delivery.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task


async def work(settings: Settings) -> None:
    """`bangdaiban worker`: deliver every configured channel and run the scheduler until
    SIGTERM/SIGINT, with the ops server on OPS_PORT."""
    app = await build_app(settings, answering=False)  # no FAQ index: the worker never answers
    stop = ops.stop_on_signals()
    try:
        async with channel_senders(settings, app) as senders, ops.serving(settings, app):
            limiters = send_limiters(settings, app.services.state, list(senders))
            jobs = scheduled_jobs(settings)
            delivery = Delivery(app.services, senders, limiters, jobs=jobs)
            await asyncio.gather(delivery.run(stop), ops.watch_calendar(stop))
    finally:
        with contextlib.suppress(Exception):
            await app.close()
