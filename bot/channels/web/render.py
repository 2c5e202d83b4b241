"""Replies to what the page shows: Telegram-HTML sanitised to a few tags, as a node tree
the page builds with DOM calls (never innerHTML)."""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

import nh3

from chat.events import Button

ALLOWED_TAGS = frozenset({"b", "i", "a", "code", "pre"})
VERBATIM = frozenset({"a", "code", "pre"})
URL_SCHEMES = frozenset({"http", "https", "tel", "mailto"})
LABEL_LIMIT = 200  # a pressed button's label echoed back; it is only ever shown as text
Node = str | dict[str, Any]
# Phone numbers and e-mail addresses in a bot text become tel:/mailto: links on the page.
# Chinese landlines (0731-88880501), mobiles (13812345678), 400 hotlines and 5-digit service
# lines (12345); never inside a longer run of letters or digits (case numbers, credit codes).
_CONTACT = re.compile(
    r"(?<![0-9A-Za-z@.-])"
    r"(?:(?P<phone>0\d{2,3}-?\d{7,8}|1[3-9]\d{9}|400-?\d{3}-?\d{4}|123\d{2})"
    r"|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}))"
    r"(?![0-9A-Za-z@-])"
)


def sanitize(text: str) -> str:
    """Telegram-HTML reduced to b, i, a (href only), code, pre; everything else escaped
    or dropped (script and style with their content)."""
    return nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        attributes={"a": {"href"}},
        url_schemes=set(URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Node] = []
        self.stack: list[list[Node]] = [self.root]
        self.verbatim = 0  # inside a, code or pre: text is never linked there

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        node: dict[str, Any] = {"t": tag, "c": []}
        href = dict(attrs).get("href")
        if tag == "a" and href:
            node["href"] = href
        if tag in VERBATIM:
            self.verbatim += 1
        self.stack[-1].append(node)
        self.stack.append(node["c"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ALLOWED_TAGS and len(self.stack) > 1:
            self.stack.pop()
            if tag in VERBATIM and self.verbatim:
                self.verbatim -= 1

    def handle_data(self, data: str) -> None:
        self.stack[-1].extend([data] if self.verbatim else linked_contacts(data))


def linked_contacts(text: str) -> list[Node]:
    """Text with its phone numbers as tel: links and e-mail addresses as mailto: links."""
    nodes: list[Node] = []
    start = 0
    for found in _CONTACT.finditer(text):
        if found.start() > start:
            nodes.append(text[start : found.start()])
        shown = found.group(0)
        phone = found.group("phone")
        href = f"tel:{phone.replace('-', '')}" if phone else f"mailto:{shown}"
        nodes.append({"t": "a", "c": [shown], "href": href})
        start = found.end()
    if start < len(text):
        nodes.append(text[start:])
    return nodes


@lru_cache(maxsize=2048)  # menus, prompts and help repeat; the result is never mutated
def _tree(text: str) -> tuple[Node, ...]:
    builder = _TreeBuilder()
    builder.feed(sanitize(text))
    builder.close()
    return tuple(builder.root)


def tree(text: str) -> list[Node]:
    """The sanitised text as nodes: strings, or {"t": tag, "c": children, "href"?}."""
    return list(_tree(text))


def bot_message(
    text: str,
    buttons: list[list[Button]],
    links: list[dict[str, str]] | None = None,
    at: dt.datetime | None = None,
    expects_text: bool = False,
) -> dict[str, Any]:
    """One message from the bot as the page receives it; `at` is shown as 今天 10:32, and
    `expects_text` puts the cursor in the text box instead of on the first button."""
    message = {
        "from": "bot",
        "text": tree(text),
        "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in buttons],
        "links": links or [],
        "at": epoch_ms(at),
    }
    if expects_text:
        message["input"] = True
    return message


def own_message(text: str, at: dt.datetime | None = None) -> dict[str, Any]:
    """What the visitor sent (or the label they pressed), shown as plain text."""
    return {"from": "me", "text": [text], "buttons": [], "links": [], "at": epoch_ms(at)}


def epoch_ms(at: dt.datetime | None) -> int:
    """Milliseconds since the epoch (what the page's Date takes); now when not given."""
    moment = at or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:  # SQLite gives back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
