"""The core's replies in WeChat's form: one plain-text message per step, buttons as numbered
options the user types (as on the console), documents as download links."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.channels.options import option_line, plain
from chat.events import Button, Document, Reply

TEXT_LIMIT = 2000  # bytes of one text message; WeChat cuts at about 2,048
CASE_NUMBER = re.compile(r"BDB-\d{4}-\d{6}")

Linker = Callable[[Document], str]


@dataclass
class Composed:
    """One step's replies merged: the message text(s) and the options they number."""

    parts: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


def compose(replies: list[Reply], link: Linker) -> Composed:
    """Merge replies into as few messages as WeChat's length allows (usually one)."""
    blocks: list[str] = []
    shown: list[Button] = []
    for reply in replies:
        lines = [plain(reply.text)] if reply.text else []
        if reply.document is not None:
            lines.append(f"📎 {reply.document.name}\n{link(reply.document)}")
        lines.extend(option_line(row, shown) for row in reply.buttons)
        if lines:
            blocks.append("\n".join(lines))
    return Composed(split("\n\n".join(blocks)), shown)


def split(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut a long text at line ends into pieces of at most `limit` UTF-8 bytes."""
    if not text:
        return []
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line.encode()) > limit:  # one very long line: cut it by characters
            head = line.encode()[:limit].decode(errors="ignore")
            parts, current = _flush(parts, current), ""
            parts.append(head)
            line = line[len(head) :]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) > limit:
            parts, current = _flush(parts, current), line
        else:
            current = candidate
    return _flush(parts, current)


def _flush(parts: list[str], current: str) -> list[str]:
    if current.strip():
        parts.append(current.strip("\n"))
    return parts


def notice_kind(key: str, buttons: list[list[Button]]) -> str:
    """Which kind of notice an outbox row is (its template is chosen per kind)."""
    first = key.split(":", 1)[0]
    if first == "case":
        data = [button.data for row in buttons for button in row]
        if any(d.startswith("u:start:") for d in data):
            return "supplement"
        if any(d.startswith("r:") for d in data):
            return "followup"
        return "form" if ":form:" in key else "case"
    if first in ("question", "announcement"):
        return first
    return "other"


def template_data(text: str, when: str, api: str) -> dict[str, str]:
    """The fields a notice template is filled with (see docs/channels/wechat.md)."""
    lines = [line for line in plain(text).splitlines() if line.strip()]
    headline = lines[0] if lines else ""
    found = CASE_NUMBER.search(text)
    number = found.group(0) if found else ""
    if api == "subscribe":  # 订阅通知: thing ≤ 20 characters, character_string ≤ 32
        return {"thing1": headline[:20], "character_string2": number, "time3": when}
    rest = "\n".join(lines[1:])
    return {"first": headline, "keyword1": number, "keyword2": when, "remark": rest[:200]}
