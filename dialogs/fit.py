"""Every message fits the channel: long text is split into ordered parts, never dropped.

Sizes are counted as Telegram counts them (UTF-16 code units; an emoji is two), on the HTML
as written, which is never shorter than the text after entity parsing. A cut falls on a line
break where one is near, never inside a tag or an entity; tags open at the cut are closed at
the end of the part and opened again at the start of the next.
"""

from __future__ import annotations

import html
import re

from chat.events import Reply

LIMIT = 4096  # Telegram's message limit; the strictest of our channels
_CLOSING_ROOM = 64  # closing tags appended to a cut part
_TAG = re.compile(r"<(/?)([a-zA-Z]+)[^>]*>")


def size(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _index_within(text: str, room: int) -> int:
    """The largest i such that text[:i] is at most `room` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            return index
    return len(text)


def _cut_point(text: str, room: int) -> int:
    end = max(1, _index_within(text, room))
    newline = text.rfind("\n", 0, end)
    if newline > end // 2:
        return newline + 1
    for opener, closer in (("<", ">"), ("&", ";")):
        start = text.rfind(opener, 0, end)
        if start > 0 and text.find(closer, start, end) == -1:
            end = start  # do not cut a tag or an entity in two
    return end


def _open_tags(text: str) -> list[tuple[str, str]]:
    """Tags opened and not yet closed in `text`, outermost first: (name, opening tag)."""
    stack: list[tuple[str, str]] = []
    for match in _TAG.finditer(text):
        closing, name = match.group(1), match.group(2).lower()
        if not closing:
            stack.append((name, match.group(0)))
        elif stack and stack[-1][0] == name:
            stack.pop()
    return stack


def split_html(text: str, limit: int = LIMIT) -> list[str]:
    """`text` in parts of at most `limit`, in order, each well-formed if `text` is."""
    parts: list[str] = []
    prefix = ""
    while size(prefix) + size(text) > limit:
        room = limit - size(prefix) - _CLOSING_ROOM
        cut = _cut_point(text, room)
        head, text = prefix + text[:cut], text[cut:]
        opened = _open_tags(head)
        parts.append(head.rstrip("\n") + "".join(f"</{name}>" for name, _ in reversed(opened)))
        prefix = "".join(tag for _, tag in opened)
    parts.append(prefix + text)
    return [part for part in parts if part.strip()] or [""]


def fit(replies: list[Reply], limit: int = LIMIT) -> list[Reply]:
    """The replies with any text over `limit` split into several, buttons on the last part."""
    fitted: list[Reply] = []
    for reply in replies:
        if reply.document is not None or size(reply.text) <= limit:
            fitted.append(reply)
            continue
        parts = split_html(reply.text, limit)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            fitted.append(
                Reply(part, reply.buttons if last else [], replace=reply.replace and index == 0)
            )
    return fitted


def plain(text: str) -> str:
    """The HTML text without its markup, escaped again so any HTML parser shows it as is."""
    return html.escape(html.unescape(_TAG.sub("", text)), quote=False)


def clip(text: str, length: int, more: str) -> str:
    """At most `length` characters of `text`, ending with `more` when it was cut."""
    return text if len(text) <= length else text[: max(0, length - len(more))] + more
