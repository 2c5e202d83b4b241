"""Signed, expiring download links for documents a channel cannot carry (WeChat: .docx)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.config import Settings, SettingsError
from chat.events import Document
from storage import files

log = logging.getLogger(__name__)
ROUTE = "/dl/{token}"


@dataclass(frozen=True)
class Download:
    path: Path
    name: str
    mime: str


class DownloadLinks:
    """Stores a document by content hash and hands out a signed link that expires."""

    def __init__(self, secret: str, base_url: str, files_dir: Path, ttl_seconds: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="download")
        self.base_url = base_url.rstrip("/")
        self.files_dir, self.ttl = files_dir, ttl_seconds

    def link(self, document: Document) -> str:
        sha256 = files.write_blob(self.files_dir, document.content)
        token = self.serializer.dumps([sha256, document.name, document.mime])
        return f"{self.base_url}{ROUTE.format(token=token)}"

    def open(self, token: str) -> Download | None:
        """What a token names, or None when forged, expired or gone."""
        try:
            sha256, name, mime = self.serializer.loads(token, max_age=self.ttl)
        except SignatureExpired:
            log.info("download link expired")
            return None
        except (BadSignature, ValueError, TypeError):
            log.info("download link refused: bad signature")
            return None
        path = files.path_for(self.files_dir, str(sha256))
        if not path.is_file():
            return None
        return Download(path, str(name), str(mime))

    async def serve(self, request: web.Request) -> web.StreamResponse:
        download = self.open(request.match_info["token"])
        if download is None:
            raise web.HTTPNotFound(text="link expired")
        disposition = f"attachment; filename*=UTF-8''{quote(download.name)}"
        return web.FileResponse(
            download.path,
            headers={"Content-Type": download.mime, "Content-Disposition": disposition},
        )


def download_links(settings: Settings) -> DownloadLinks:
    """Links on the web server's public address (WEB_PUBLIC_URL), signed with DOWNLOAD_SECRET
    (or a key derived from the WeChat app secret)."""
    secret = settings.download_secret
    if not secret and settings.wechat_app_secret:
        secret = hmac.new(
            settings.wechat_app_secret.encode(), b"download", hashlib.sha256
        ).hexdigest()
    if not secret:
        raise SettingsError("DOWNLOAD_SECRET: required to sign download links")
    return DownloadLinks(
        secret, settings.web_url, settings.files_dir, settings.download_ttl_seconds
    )
