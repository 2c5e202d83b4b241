"""WeChat Official Account (服务号): the `/wechat` callback, customer-service and template
messages, the outbox sender for channel "wechat", menu and QR codes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.app import App
from bot.channels.downloads import ROUTE, download_links
from bot.channels.signed import add_signed_route
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.callback import WeChatCallback
from bot.channels.wechat.crypto import MessageCrypto
from bot.channels.wechat.gate import Gate
from bot.channels.wechat.sender import CHANNEL as CHANNEL
from bot.channels.wechat.sender import WeChatSender
from bot.config import Settings, SettingsError
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard
from storage.wechat import (
    CallbackNonces,
    MemoryCallbackNonces,
    MemorySeenCallbacks,
    MemoryTokenCache,
    RedisCallbackNonces,
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


def callback_nonces(settings: Settings, app: App) -> CallbackNonces:
    """Where used (timestamp, nonce) pairs are kept: Redis when there, else this process."""
    state = app.services.state
    if state.redis is not None:
        return RedisCallbackNonces(state.redis, state.prefix)
    return MemoryCallbackNonces(settings.wechat_nonce_cache)


def flood_guard(settings: Settings, app: App) -> FloodGuard:
    """FLOOD_LIMIT per follower, shared through Redis like the other channels' windows."""
    state = app.services.state
    limit, window = settings.flood_limit, settings.flood_window_seconds
    if state.redis is not None:
        return RedisFloodGuard(state.redis, limit, window, state.prefix)
    return MemoryFloodGuard(limit, window)


def build_gate(settings: Settings, app: App) -> Gate:
    token, app_id, _ = _required(settings)
    aes_key = settings.wechat_aes_key
    return Gate(
        token,
        MessageCrypto(token, aes_key, app_id) if aes_key else None,
        callback_nonces(settings, app),
        max_age=settings.wechat_max_age,
        body_limit=settings.wechat_body_limit,
        accept_plaintext=settings.wechat_accept_plaintext,
    )


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
        api or build_api(settings, app),
        app.services,
        settings,
        download_links(settings, app.services.db),
    )


def setup_wechat(web_app: web.Application, app: App, settings: Settings, prefix: str = "") -> None:
    """Add the `/wechat` callback and the download route to `web_app` (under `prefix`)."""
    sender = build_sender(settings, app)
    gate = build_gate(settings, app)
    callback = WeChatCallback(
        gate,
        app.router,
        app.services.db,
        sender.api,
        sender,
        seen_callbacks(app),
        flood_guard(settings, app),
        settings.wechat_reply_within,
    )
    web_app[CALLBACK_KEY] = callback
    web_app[SENDER_KEY] = sender
    web_app.router.add_get(prefix + CALLBACK, callback.verify)
    web_app.router.add_post(prefix + CALLBACK, callback.receive)
    add_signed_route(web_app, prefix + CALLBACK, gate.is_signed)  # no per-IP limit: Tencent's
    web_app.router.add_get(prefix + ROUTE, sender.links.serve)

    async def cleanup(_: web.Application) -> None:
        await callback.close()
        await sender.api.close()

    web_app.on_cleanup.append(cleanup)
