"""QR codes (segno) opening the web chat with a source tag, for the window and posters.

The printed form's QR code (a case's status) is made in dialogs/printable.py."""

from __future__ import annotations

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


def save_chat_qr(settings: Settings, out: Path, tag: str) -> str:
    """Write the chat's QR code as PNG or SVG (by the file's suffix); returns its address."""
    url = chat_url(settings, tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    segno.make(url, error="m").save(str(out), scale=10, border=4)
    return url
