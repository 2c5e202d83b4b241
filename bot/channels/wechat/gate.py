"""The callback's door: what a request must show before its body is read or parsed.

In order, cheapest first: the query's shape and signature (SHA-1 of token, timestamp,
nonce) and its age; in 安全模式 an encrypted body (plaintext only with
WECHAT_ACCEPT_PLAINTEXT); the (timestamp, nonce) pair used once within the window; the
body's size; then the XML, and in 安全模式 its msg_signature and decryption.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.channels.wechat.crypto import CryptoError, MessageCrypto, signed
from bot.channels.wechat.messages import BadMessage, WeChatMessage, fields
from storage.wechat import CallbackNonces, NoncesUnavailable

log = logging.getLogger(__name__)
NONCE_LIMIT = 64  # characters; WeChat's nonces are ten digits or so
TIMESTAMP_LIMIT = 12  # digits: seconds since 1970, for centuries


@dataclass(frozen=True)
class Signed:
    """The query of a callback whose signature and age were checked."""

    timestamp: str
    nonce: str
    encrypted: bool
    msg_signature: str


class Refused(Exception):
    """The request is not (or no longer) WeChat's, or cannot be taken: a 4xx (or 503)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason

    def response(self, request: web.Request) -> web.Response:
        log.warning("wechat callback refused: %s from=%s", self.reason, request.remote)
        return web.Response(status=self.status, text=_TEXTS[self.status])


_TEXTS = {
    400: "bad request",
    403: "forbidden",
    413: "too large",
    503: "busy",
}


class Gate:
    def __init__(
        self,
        token: str,
        crypto: MessageCrypto | None,
        nonces: CallbackNonces,
        *,
        max_age: int = 300,
        body_limit: int = 64 * 1024,
        accept_plaintext: bool = False,
    ) -> None:
        self.token, self.crypto, self.nonces = token, crypto, nonces
        self.max_age, self.body_limit = max_age, body_limit
        self.accept_plaintext = accept_plaintext or crypto is None

    def signed(self, query: Mapping[str, str]) -> Signed | None:
        """The query if WeChat signed it within the window; None otherwise. No I/O."""
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= TIMESTAMP_LIMIT):
            return None
        if not nonce or len(nonce) > NONCE_LIMIT:
            return None
        if not signed(query.get("signature", ""), self.token, timestamp, nonce):
            return None
        if abs(time.time() - int(timestamp)) > self.max_age:
            return None
        encrypted = query.get("encrypt_type", "raw") == "aes"
        return Signed(timestamp, nonce, encrypted, query.get("msg_signature", ""))

    def is_signed(self, request: web.Request) -> bool:
        """For the web server's per-IP limit: WeChat's own requests are not counted (a
        plaintext post in 安全模式 is not WeChat's: counted, then refused)."""
        checked = self.signed(request.query)
        if checked is None:
            return False
        return request.method == "GET" or checked.encrypted or self.accept_plaintext

    async def admit(self, query: Mapping[str, str], *, body: bool = True) -> Signed:
        """The signed query, its pair recorded as used; `Refused` otherwise."""
        checked = self.signed(query)
        if checked is None:
            raise Refused(403, "bad signature or stale")
        if body and not checked.encrypted and not self.accept_plaintext:
            raise Refused(403, "plaintext message in 安全模式")
        try:
            first = await self.nonces.claim(int(checked.timestamp), checked.nonce, self.max_age)
        except NoncesUnavailable as exc:  # refuse rather than risk a replay; WeChat retries
            raise Refused(503, f"replay guard unavailable ({type(exc).__name__})") from exc
        if not first:
            raise Refused(403, "timestamp and nonce used before")
        return checked

    async def message(self, request: web.Request, query: Signed) -> WeChatMessage:
        """The body within its size, parsed, decrypted in 安全模式; `Refused` otherwise."""
        if (request.content_length or 0) > self.body_limit:
            raise Refused(413, "body over the limit")
        body = await request.content.read(self.body_limit + 1)
        if len(body) > self.body_limit:
            raise Refused(413, "body over the limit")
        try:
            return WeChatMessage.parse(self._open(body, query))
        except CryptoError as exc:
            raise Refused(403, f"encrypted message ({exc})") from exc
        except BadMessage as exc:
            raise Refused(400, f"malformed ({exc})") from exc

    def _open(self, body: bytes, query: Signed) -> dict[str, str]:
        values = fields(body)
        if not query.encrypted:
            return values
        if self.crypto is None:
            raise CryptoError("encrypted message but WECHAT_AES_KEY is not set")
        inner = self.crypto.decrypt(
            values.get("Encrypt", ""), query.msg_signature, query.timestamp, query.nonce
        )
        return fields(inner)
