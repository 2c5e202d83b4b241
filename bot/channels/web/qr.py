"""QR codes (segno): one opening the web chat with a source tag, one opening a case's status."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlencode

import segno

from bot.config import Settings
from dialogs.texts import labels


def source_tags() -> dict[str, str]:
    """What staff type on the command line (窗口 …) → the tag in the address, stored as is."""
    return {name: tag for tag, name in labels("sources").items()}


def chat_url(settings: Settings, tag: str) -> str:
    return f"{settings.web_url}?{urlencode({'src': tag})}"


def case_url(base_url: str, number: str) -> str:
    """The page with 查询进度 opened on this case (the 查询码 is still asked for)."""
    return f"{base_url}?{urlencode({'case': number})}"


def save_chat_qr(settings: Settings, out: Path, tag: str) -> str:
    """Write the chat's QR code as PNG or SVG (by the file's suffix); returns its address."""
    url = chat_url(settings, tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    segno.make(url, error="m").save(str(out), scale=10, border=4)
    return url


def png(url: str, scale: int = 6) -> bytes:
    """A QR code as PNG bytes (for the printable form)."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()
