"""WeChat Official Account (服务号): the `/wechat` callback, customer-service and template
messages, the outbox sender for channel "wechat", menu and QR codes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.app import App
from bot.channels.downloads import ROUTE, download_links
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.callback import WeChatCallback
from bot.channels.wechat.crypto import MessageCrypto
from bot.channels.wechat.sender import CHANNEL as CHANNEL
from bot.channels.wechat.sender import WeChatSender
from bot.config import Settings, SettingsError
from storage.wechat import (
    MemorySeenCallbacks,
    MemoryTokenCache,
    RedisSeenCallbacks,
    RedisTokenCache,
    SeenCallbacks,
    TokenCache,
)

log = logging.getLogger(__name__)
CALLBACK = "/wechat"
CALLBACK_KEY = web.AppKey("wechat_callback", WeChatCallback)
SENDER_KEY = web.AppKey("wechat_sender", WeChatSender)


def _required(settings: Settings) -> tuple[str, str, str]:
    for name in ("wechat_token", "wechat_app_id", "wechat_app_secret"):
        if not getattr(settings, name):
            raise SettingsError(f"{name.upper()}: required for the WeChat channel")
    assert settings.wechat_token and settings.wechat_app_id and settings.wechat_app_secret
    return settings.wechat_token, settings.wechat_app_id, settings.wechat_app_secret


def token_cache(settings: Settings, app: App) -> TokenCache:
    """In Redis when the state store is there (shared by every process), else in memory."""
    _, app_id, _ = _required(settings)
    state = app.services.state
    if state.redis is not None:  # share the app's one bounded pool
        return RedisTokenCache(state.redis, app_id, state.prefix)
    return MemoryTokenCache()


def seen_callbacks(app: App) -> SeenCallbacks:
    """Where retried callbacks are recognised: Redis when there, else this process."""
    state = app.services.state
    if state.redis is not None:
        return RedisSeenCallbacks(state.redis, state.prefix)
    return MemorySeenCallbacks()


def build_api(settings: Settings, app: App) -> WeChatApi:
    _, app_id, secret = _required(settings)
    return WeChatApi(settings.wechat_api_url, app_id, secret, token_cache(settings, app))


@contextlib.asynccontextmanager
async def command_api(settings: Settings) -> AsyncIterator[WeChatApi]:
    """The API for a one-off command (menu, QR code), sharing the token through REDIS_URL."""
    _, app_id, secret = _required(settings)
    tokens: TokenCache = MemoryTokenCache()
    if settings.redis_url:
        tokens = RedisTokenCache.from_url(settings.redis_url, app_id)
    api = WeChatApi(settings.wechat_api_url, app_id, secret, tokens)
    try:
        yield api
    finally:
        await api.close()
        if isinstance(tokens, RedisTokenCache):
            await tokens.close()


def build_sender(settings: Settings, app: App, api: WeChatApi | None = None) -> WeChatSender:
    return WeChatSender(
        api or build_api(settings, app), app.services, settings, download_links(settings)
    )


def setup_wechat(web_app: web.Application, app: App, settings: Settings, prefix: str = "") -> None:
    """Add the `/wechat` callback and the download route to `web_app` (under `prefix`)."""
    token, app_id, _ = _required(settings)
    sender = build_sender(settings, app)
    crypto = (
        MessageCrypto(token, settings.wechat_aes_key, app_id) if settings.wechat_aes_key else None
    )
    callback = WeChatCallback(
        token,
        app.router,
        app.services.db,
        sender.api,
        sender,
        crypto,
        seen_callbacks(app),
        settings.wechat_reply_within,
    )
    web_app[CALLBACK_KEY] = callback
    web_app[SENDER_KEY] = sender
    web_app.router.add_get(prefix + CALLBACK, callback.verify)
    web_app.router.add_post(prefix + CALLBACK, callback.receive)
    web_app.router.add_get(prefix + ROUTE, sender.links.serve)

    async def cleanup(_: web.Application) -> None:
        await callback.close()
        await sender.api.close()

    web_app.on_cleanup.append(cleanup)
