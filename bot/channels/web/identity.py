"""Anonymous visitors: a signed cookie names the web chat id; CSRF and download tokens
are derived from it, so only that browser can use them."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from bot.config import Settings

COOKIE = "bdb_chat"
COOKIE_MAX_AGE = 365 * 24 * 3600
SECRET_FILE = Path("var/web-secret")


def load_secret(settings: Settings, path: Path = SECRET_FILE) -> str:
    """WEB_SECRET, or one made once and kept on disk (embedded default)."""
    if settings.web_secret:
        return settings.web_secret
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.write_text(secret, encoding="utf-8")
    path.chmod(0o600)
    return secret


class Identity:
    def __init__(self, secret: str) -> None:
        self._cookies = URLSafeSerializer(secret, salt="web-chat")
        self._files = URLSafeSerializer(secret, salt="web-file")
        self._csrf_key = hmac.new(secret.encode(), b"web-csrf", "sha256").digest()

    @staticmethod
    def new_chat_id() -> str:
        return "w" + secrets.token_urlsafe(18)

    def cookie_value(self, chat_id: str) -> str:
        return str(self._cookies.dumps(chat_id))

    def chat_id(self, cookie: str | None) -> str | None:
        """The chat id of a cookie we signed, else None."""
        if not cookie:
            return None
        try:
            value = self._cookies.loads(cookie)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def csrf_token(self, chat_id: str) -> str:
        return hmac.new(self._csrf_key, chat_id.encode(), "sha256").hexdigest()

    def csrf_ok(self, chat_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(chat_id), str(token))

    def file_token(
        self, chat_id: str, sha256: str, name: str, mime: str, case_number: str | None = None
    ) -> str:
        value = {"c": chat_id, "h": sha256, "n": name, "m": mime, "k": case_number}
        return str(self._files.dumps(value))

    def file_of(self, chat_id: str, token: str) -> dict[str, Any] | None:
        """The file a download token names, if it was made for this chat."""
        try:
            value = self._files.loads(token)
        except BadSignature:
            return None
        if not isinstance(value, dict) or value.get("c") != chat_id:
            return None
        return value
