"""Drive the real Telegram adapter through the Bot API stub, as a user would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.app import App
from bot.channels.telegram import TelegramChannel, TelegramService, running
from bot.config import Settings
from bot.outbox import WorkerConfig
from botapi_stub import TOKEN, BotApiStub, Call

STEP_TIMEOUT = 10.0


class Handled:
    """Update ids the adapter has finished with (its on_update_done hook)."""

    def __init__(self, channel: TelegramChannel) -> None:
        self.ids: set[int] = set()
        self._changed = asyncio.Event()
        channel.on_update_done = self._done

    def _done(self, update_id: int) -> None:
        self.ids.add(update_id)
        self._changed.set()

    async def wait(self, *update_ids: int) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            while not set(update_ids) <= self.ids:
                self._changed.clear()
                await self._changed.wait()


class TgUser:
    """One Telegram user: each action waits until the bot has handled it and returns what
    the bot showed this user meanwhile."""

    def __init__(self, stub: BotApiStub, handled: Handled, chat_id: int) -> None:
        self.stub, self.handled, self.chat_id = stub, handled, chat_id
        self.last: list[Call] = []

    @property
    def text(self) -> str:
        return "\n".join(call.text for call in self.last)

    async def _act(self, update_id: int, seen: int) -> list[Call]:
        await self.handled.wait(update_id)
        self.last = self.stub.sent(self.chat_id)[seen:]
        return self.last

    async def say(self, text: str) -> list[Call]:
        seen = len(self.stub.sent(self.chat_id))
        return await self._act(self.stub.user_says(self.chat_id, text), seen)

    async def upload(self, name: str, content: bytes, mime: str) -> list[Call]:
        seen = len(self.stub.sent(self.chat_id))
        return await self._act(self.stub.user_uploads(self.chat_id, name, content, mime), seen)

    def button(self, label: str) -> tuple[int, str]:
        """(message id, callback data) of the newest button whose label contains `label`."""
        for call in reversed(self.stub.sent(self.chat_id)):
            for button in call.buttons:
                if label in button["text"]:
                    return int(call.params["message_id"]), button["callback_data"]
        raise AssertionError(f"no button {label!r} was shown to {self.chat_id}")

    async def press(self, label: str) -> list[Call]:
        message_id, data = self.button(label)
        return await self.press_data(message_id, data)

    async def press_data(self, message_id: int, data: str) -> list[Call]:
        seen = len(self.stub.sent(self.chat_id))
        return await self._act(self.stub.user_presses(self.chat_id, message_id, data), seen)


def bot_settings(app: App, stub: BotApiStub, **overrides: Any) -> Settings:
    return app.settings.model_copy(
        update={"telegram_bot_token": TOKEN, "telegram_api_url": stub.base_url, **overrides}
    )


@asynccontextmanager
async def telegram(
    app: App, stub: BotApiStub, run_worker: bool = False, **overrides: Any
) -> AsyncIterator[tuple[TelegramService, Handled]]:
    """The adapter on long polling against the stub, as `bangdaiban run` starts it."""
    settings = bot_settings(app, stub, **overrides)
    fast = WorkerConfig(poll_interval=0.05, backoff_base=0.05)
    async with running(settings, app, worker=fast, run_worker=run_worker) as service:
        yield service, Handled(service.channel)


@asynccontextmanager
async def stub_server() -> AsyncIterator[BotApiStub]:
    stub = BotApiStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


async def until_sent(stub: BotApiStub, chat_id: int, method: str, count: int = 1) -> list[Call]:
    """Wait for `count` calls of `method` to this chat (notices come from the outbox worker)."""
    await stub.wait_until(lambda: len(stub.sent(chat_id, method)) >= count, STEP_TIMEOUT)
    return stub.sent(chat_id, method)
