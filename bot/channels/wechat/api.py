"""The WeChat server API (api.weixin.qq.com or WECHAT_API_URL): the access token shared by
every process, customer-service and template messages, media, menu and QR codes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from storage.wechat import TokenCache

log = logging.getLogger(__name__)

TOKEN_EXPIRED = frozenset({40001, 40014, 42001})  # invalid / expired access token
RATE_LIMITED = frozenset({-1, 45009, 45011})  # busy, daily quota, per-minute quota
OUT_OF_WINDOW = frozenset({45015, 45047})  # 48-hour window over / its quota spent
NOT_FOLLOWING = frozenset({43004, 40003})  # unfollowed / unknown openid
TOKEN_MARGIN = 300.0  # seconds: refresh a little before WeChat's expiry
TOKEN_WAIT = 10.0  # seconds a process waits for another one's token fetch
RATE_BACKOFF = 60.0  # seconds to wait after a rate-limit answer


class WeChatApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message = code, message


class RateLimited(WeChatApiError):
    """WeChat says slow down; try again after `seconds`."""

    def __init__(self, code: int, message: str, seconds: float = RATE_BACKOFF) -> None:
        super().__init__(code, message)
        self.seconds = seconds


class WeChatApi:
    """One client per process; the token lives in the cache, not here."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        tokens: TokenCache,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id, self.app_secret = app_id, app_secret
        self.tokens = tokens
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- the access token ------------------------------------------------------------------

    async def token(self) -> str:
        """The current access token; fetched by one process at a time when missing."""
        cached = await self.tokens.get()
        if cached:
            return cached
        async with asyncio.timeout(TOKEN_WAIT), self.tokens.lock():
            cached = await self.tokens.get()  # another process may have fetched it
            if cached:
                return cached
            return await self._fetch_token(force=False)

    async def refresh(self, stale: str) -> str:
        """A new token after WeChat refused `stale` (40001/42001)."""
        await self.tokens.drop(stale)
        async with asyncio.timeout(TOKEN_WAIT), self.tokens.lock():
            cached = await self.tokens.get()
            if cached and cached != stale:
                return cached
            return await self._fetch_token(force=True)

    async def _fetch_token(self, force: bool) -> str:
        # stable_token: a new token does not cut off the one other processes still hold.
        body = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self.app_secret,
            "force_refresh": force,
        }
        answer = await self._request("POST", "/cgi-bin/stable_token", body=body)
        token = str(answer["access_token"])
        lifetime = float(answer.get("expires_in", 7200))
        await self.tokens.put(token, max(60.0, lifetime - TOKEN_MARGIN))
        log.info("wechat access token fetched expires_in=%s force=%s", lifetime, force)
        return token

    # -- calls ----------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A JSON API call with the access token, fetched again once if it was refused."""
        token = await self.token()
        try:
            return await self._request(
                method, path, body, {**(params or {}), "access_token": token}
            )
        except WeChatApiError as exc:
            if exc.code not in TOKEN_EXPIRED:
                raise
            log.info("wechat access token refused code=%s", exc.code)
        token = await self.refresh(token)
        return await self._request(method, path, body, {**(params or {}), "access_token": token})

    async def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        async with self.session.request(
            method, self.base_url + path, params=params, data=data, headers=headers
        ) as response:
            response.raise_for_status()
            answer: dict[str, Any] = json.loads(await response.read())
        _check(answer)
        return answer

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service message (客服消息)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self.call("POST", "/cgi-bin/message/custom/send", body)

    async def send_template(
        self, openid: str, template_id: str, data: dict[str, str], url: str | None = None
    ) -> None:
        """A template message (模板消息)."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {name: {"value": value} for name, value in data.items()},
        }
        if url:
            body["url"] = url
        await self.call("POST", "/cgi-bin/message/template/send", body)

    async def send_subscribe(
        self, openid: str, template_id: str, data: dict[str, str], page: str | None = None
    ) -> None:
        """A subscription notice (订阅通知, bizsend)."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {name: {"value": value} for name, value in data.items()},
        }
        if page:
            body["page"] = page
        await self.call("POST", "/cgi-bin/message/subscribe/bizsend", body)

    async def media(self, media_id: str) -> tuple[bytes, str]:
        """A temporary media file (a user's photo) by MediaId: its bytes and type."""
        for attempt in (1, 2):
            token = await self.token()
            params = {"access_token": token, "media_id": media_id}
            async with self.session.get(self.base_url + "/cgi-bin/media/get", params=params) as r:
                r.raise_for_status()
                mime = r.headers.get("Content-Type", "application/octet-stream").split(";")[0]
                content = await r.read()
            if mime not in ("application/json", "text/plain"):
                return content, mime
            try:  # errors come back as JSON
                _check(json.loads(content))
            except WeChatApiError as exc:
                if exc.code not in TOKEN_EXPIRED or attempt == 2:
                    raise
                await self.refresh(token)
                continue
            return content, mime
        raise AssertionError("unreachable")

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.call("POST", "/cgi-bin/menu/create", menu)

    async def create_qrcode(self, scene: str, expire_seconds: int | None) -> dict[str, Any]:
        """A parametric QR code for `scene`: permanent, or temporary for `expire_seconds`."""
        body: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if expire_seconds is None else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}},
        }
        if expire_seconds is not None:
            body["expire_seconds"] = expire_seconds
        return await self.call("POST", "/cgi-bin/qrcode/create", body)


def _check(answer: dict[str, Any]) -> None:
    code = int(answer.get("errcode", 0) or 0)
    if code == 0:
        return
    message = str(answer.get("errmsg", ""))
    if code in RATE_LIMITED:
        raise RateLimited(code, message)
    raise WeChatApiError(code, message)
