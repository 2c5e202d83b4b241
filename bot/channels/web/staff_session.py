"""Staff sessions of the web chat: a signed, HttpOnly cookie naming a bound browser
(`staff_devices` row and its nonce). The server checks the row on every request, so a
revoked or expired browser is signed out at once; a forged cookie never reaches the database."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from storage import staff_devices
from storage.db import Database
from storage.models import Staff, staff_web_chat

STAFF_COOKIE = "bdb_staff"
RENEW_AFTER = 3600  # seconds: renew the cookie (and the row) at most hourly, not per request


@dataclass(frozen=True)
class StaffSession:
    device_id: int
    nonce: str
    staff: Staff

    @property
    def chat_id(self) -> str:
        return staff_web_chat(self.staff.id)

    @property
    def csrf_subject(self) -> str:
        """What the CSRF token of this browser is derived from (per device, not per person)."""
        return f"device-{self.device_id}-{self.nonce}"


class StaffSessions:
    def __init__(self, secret: str, db: Database, days: int) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="web-staff")
        self.db = db
        self.lifetime = dt.timedelta(days=days)

    def cookie_value(self, device_id: int, nonce: str) -> str:
        return str(self._signer.dumps({"d": device_id, "n": nonce}))

    def _claims(self, cookie: str | None) -> tuple[int, str, float] | None:
        """(device id, nonce, signed at) of a cookie we signed within the lifetime."""
        if not cookie:
            return None
        try:
            value, signed = self._signer.loads(
                cookie, max_age=int(self.lifetime.total_seconds()), return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(value, dict):
            return None
        device, nonce = value.get("d"), value.get("n")
        if not isinstance(device, int) or not isinstance(nonce, str):
            return None
        return device, nonce, signed.timestamp()

    async def check(self, cookie: str | None) -> StaffSession | None:
        """The live session a cookie names, or None."""
        claims = self._claims(cookie)
        return await self._live(claims[0], claims[1]) if claims else None

    async def _live(self, device_id: int, nonce: str) -> StaffSession | None:
        async with self.db.sessions() as session:
            found = await staff_devices.signed_in(session, device_id, nonce)
        if found is None:
            return None
        return StaffSession(found[0].id, found[0].nonce, found[1])

    async def resolve(
        self, request: web.Request, response_cookies: list[tuple[str, str]]
    ) -> StaffSession | None:
        """The request's live session; when due, the renewed cookie is added to
        `response_cookies` for the caller to set."""
        claims = self._claims(request.cookies.get(STAFF_COOKIE))
        if claims is None:
            return None
        found = await self._live(claims[0], claims[1])
        if found is None:
            return None
        if time.time() - claims[2] >= RENEW_AFTER:
            async with self.db.transaction() as session:
                renewed = await staff_devices.renew(session, found.device_id, self.lifetime)
            if renewed:
                response_cookies.append(
                    (STAFF_COOKIE, self.cookie_value(found.device_id, found.nonce))
                )
        return found

    def set_cookie(self, response: web.StreamResponse, value: str, path: str, secure: bool) -> None:
        response.set_cookie(
            STAFF_COOKIE,
            value,
            max_age=int(self.lifetime.total_seconds()),
            path=path,
            httponly=True,
            samesite="Lax",
            secure=secure,
        )
