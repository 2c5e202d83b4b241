"""WeCom (企业微信) / 政务微信 for staff: the `/wecom` callback and the OAuth sign-in into
/desk on the web server, the outbox sender for channel "wecom", and the app's commands."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from bot.app import App
from bot.channels.downloads import ROUTE as DOWNLOAD_ROUTE
from bot.channels.downloads import DownloadLinks
from bot.channels.wechat.crypto import MessageCrypto
from bot.channels.wecom import oauth
from bot.channels.wecom.api import WeComApi
from bot.channels.wecom.callback import WeComCallback
from bot.channels.wecom.sender import CHANNEL as CHANNEL
from bot.channels.wecom.sender import WeComSender
from bot.config import Settings, SettingsError
from storage.db import Database
from storage.wechat import (
    MemorySeenCallbacks,
    MemoryTokenCache,
    RedisSeenCallbacks,
    RedisTokenCache,
    SeenCallbacks,
    TokenCache,
)

log = logging.getLogger(__name__)
CALLBACK = "/wecom"
CALLBACK_KEY = web.AppKey("wecom_callback", WeComCallback)
SENDER_KEY = web.AppKey("wecom_sender", WeComSender)


@dataclass(frozen=True)
class WeComApp:
    """The settings of one self-built app, all present."""

    corp_id: str
    agent_id: int
    secret: str
    token: str
    aes_key: str

    @property
    def token_key(self) -> str:
        return f"wecom:{self.corp_id}:{self.agent_id}"


def configured(settings: Settings) -> bool:
    return bool(settings.wecom_corp_id)


def required(settings: Settings) -> WeComApp:
    """The app's settings, or one line naming the first one missing."""
    for name in ("wecom_corp_id", "wecom_agent_id", "wecom_secret", "wecom_token", "wecom_aes_key"):
        if not getattr(settings, name):
            raise SettingsError(f"{name.upper()}: required for the WeCom channel")
    assert settings.wecom_corp_id and settings.wecom_agent_id and settings.wecom_secret
    assert settings.wecom_token and settings.wecom_aes_key
    try:
        MessageCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id)
    except ValueError:
        raise SettingsError("WECOM_AES_KEY: not an EncodingAESKey") from None
    return WeComApp(
        settings.wecom_corp_id,
        settings.wecom_agent_id,
        settings.wecom_secret,
        settings.wecom_token,
        settings.wecom_aes_key,
    )


def token_cache(settings: Settings, app: App) -> TokenCache:
    """In Redis when the state store is there (one token for every process), else memory."""
    state = app.services.state
    if state.redis is not None:
        return RedisTokenCache(state.redis, required(settings).token_key, state.prefix)
    return MemoryTokenCache()


def build_api(settings: Settings, tokens: TokenCache) -> WeComApi:
    wecom = required(settings)
    return WeComApi(
        settings.wecom_api_url,
        wecom.corp_id,
        wecom.agent_id,
        wecom.secret,
        tokens,
        settings.wecom_duplicate_check_seconds,
    )


def download_links(settings: Settings, db: Database | None = None) -> DownloadLinks:
    """Documents go as links on the web server, signed with DOWNLOAD_SECRET (or a key
    derived from the app's secret)."""
    secret = (
        settings.download_secret
        or hmac.new(required(settings).secret.encode(), b"download", hashlib.sha256).hexdigest()
    )
    return DownloadLinks(
        secret,
        settings.web_url,
        settings.files_dir,
        settings.download_ttl_seconds,
        db,
        settings.web_trust_proxy,
    )


def build_sender(settings: Settings, app: App, api: WeComApi | None = None) -> WeComSender:
    api = api or build_api(settings, token_cache(settings, app))
    return WeComSender(
        api, app.services, download_links(settings, app.services.db), oauth.authorize_url(settings)
    )


def seen_callbacks(app: App) -> SeenCallbacks:
    state = app.services.state
    if state.redis is not None:
        return RedisSeenCallbacks(state.redis, state.prefix)
    return MemorySeenCallbacks()


@contextlib.asynccontextmanager
async def command_api(settings: Settings) -> AsyncIterator[WeComApi]:
    """The API for a one-off command (sync, menu), sharing the token through REDIS_URL."""
    wecom = required(settings)
    tokens: TokenCache = MemoryTokenCache()
    if settings.redis_url:
        tokens = RedisTokenCache.from_url(settings.redis_url, wecom.token_key)
    api = build_api(settings, tokens)
    try:
        yield api
    finally:
        await api.close()
        if isinstance(tokens, RedisTokenCache):
            await tokens.close()


def setup_wecom(web_app: web.Application, app: App, settings: Settings, prefix: str = "") -> None:
    """Add `/wecom` (callback), `/wecom/oauth` (待办事项 sign-in) and the download route."""
    wecom = required(settings)
    sender = build_sender(settings, app)
    crypto = MessageCrypto(wecom.token, wecom.aes_key, wecom.corp_id)
    callback = WeComCallback(
        crypto,
        wecom.agent_id,
        app.router,
        app.services.db,
        sender.api,
        sender,
        seen_callbacks(app),
        settings.wecom_reply_within,
        settings.wecom_callback_bytes,
    )
    web_app[CALLBACK_KEY] = callback
    web_app[SENDER_KEY] = sender
    web_app[oauth.API_KEY] = sender.api
    web_app.router.add_get(prefix + CALLBACK, callback.verify)
    web_app.router.add_post(prefix + CALLBACK, callback.receive)
    web_app.router.add_get(prefix + oauth.ROUTE, oauth.sign_in)
    download = prefix + DOWNLOAD_ROUTE
    if not any(r.get_info().get("formatter") == download for r in web_app.router.resources()):
        assert sender.links is not None
        web_app.router.add_get(download, sender.links.serve)

    async def cleanup(_: web.Application) -> None:
        await callback.close()
        await sender.api.close()

    web_app.on_cleanup.append(cleanup)
