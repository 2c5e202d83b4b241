"""Signed, expiring download links for documents a channel cannot carry (WeChat: .docx)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.config import Settings, SettingsError
from chat.events import ChatUser, Document
from domain import audit
from storage import files
from storage.db import Database

log = logging.getLogger(__name__)
ROUTE = "/dl/{token}"


@dataclass(frozen=True)
class Download:
    path: Path
    name: str
    mime: str
    chat: tuple[str, str] | None = None  # the channel and chat the link was made for
    case_number: str | None = None


def client_address(request: web.Request, trust_proxy: bool) -> str:
    """The requester's address: the one our reverse proxy saw, where it is trusted."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if trust_proxy and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.remote or "unknown"


class DownloadLinks:
    """Stores a document by content hash and hands out a signed link that expires; each link
    names the chat it was made for, so opening it is audited as that person's download."""

    def __init__(
        self,
        secret: str,
        base_url: str,
        files_dir: Path,
        ttl_seconds: int,
        db: Database | None = None,
        trust_proxy: bool = False,
    ) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="download")
        self.base_url = base_url.rstrip("/")
        self.files_dir, self.ttl = files_dir, ttl_seconds
        self.db, self.trust_proxy = db, trust_proxy

    def link(self, document: Document, user: ChatUser | None = None) -> str:
        sha256 = files.write_blob(self.files_dir, document.content)
        chat = [user.channel, user.chat_id] if user is not None else None
        value = [sha256, document.name, document.mime, chat, document.case_number]
        token = self.serializer.dumps(value)
        return f"{self.base_url}{ROUTE.format(token=token)}"

    def linker(self, user: ChatUser) -> Callable[[Document], str]:
        """Links made for this chat (what the channels' composers call)."""
        return lambda document: self.link(document, user)

    def open(self, token: str) -> Download | None:
        """What a token names, or None when forged, expired or gone."""
        try:
            sha256, name, mime, *about = self.serializer.loads(token, max_age=self.ttl)
        except SignatureExpired:
            log.info("download link expired")
            return None
        except (BadSignature, ValueError, TypeError):
            log.info("download link refused: bad signature")
            return None
        path = files.path_for(self.files_dir, str(sha256))
        if not path.is_file():
            return None
        chat, number = [*about, None, None][:2]
        holder = (str(chat[0]), str(chat[1])) if isinstance(chat, list) and len(chat) == 2 else None
        return Download(path, str(name), str(mime), holder, str(number) if number else None)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        download = self.open(request.match_info["token"])
        if download is None:
            raise web.HTTPNotFound(text="link expired")
        if self.db is not None:  # recorded before a byte is sent: no record, no file
            channel = download.chat[0] if download.chat else "link"
            client = client_address(request, self.trust_proxy)
            await audit.download(
                self.db, download.chat, "download.file", download.case_number, channel, client
            )
        disposition = f"attachment; filename*=UTF-8''{quote(download.name)}"
        return web.FileResponse(
            download.path,
            headers={"Content-Type": download.mime, "Content-Disposition": disposition},
        )


def download_links(settings: Settings, db: Database | None = None) -> DownloadLinks:
    """Links on the web server's public address (WEB_PUBLIC_URL), signed with DOWNLOAD_SECRET
    (or a key derived from the WeChat app secret); with `db`, each download is audited."""
    secret = settings.download_secret
    if not secret and settings.wechat_app_secret:
        secret = hmac.new(
            settings.wechat_app_secret.encode(), b"download", hashlib.sha256
        ).hexdigest()
    if not secret:
        raise SettingsError("DOWNLOAD_SECRET: required to sign download links")
    return DownloadLinks(
        secret,
        settings.web_url,
        settings.files_dir,
        settings.download_ttl_seconds,
        db,
        settings.web_trust_proxy,
    )
