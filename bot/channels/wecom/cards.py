"""The core's replies and notices in WeCom's forms: a 模板卡片 (button_interaction) when
they carry buttons that fit one, else text messages of at most 2,048 bytes with the buttons
as numbered options (typing the number presses it, as on the console and WeChat).

A card shows a title and a short text; what does not fit is shortened where a line or
sentence ends, and the card then says so and links to 待办事项 (/desk), never cut silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.channels.options import option_line, plain
from bot.channels.wechat.compose import split
from chat.events import Button, Document, Reply
from dialogs.texts import label

TEXT_BYTES = 2048  # WeCom's limit for one text message
TITLE_CHARS = 26  # main_title.title, WeCom's recommended maximum
SUB_TITLE_CHARS = 112  # sub_title_text
BUTTONS = 6  # button_list holds at most six
BUTTON_CHARS = 10  # a button's text
ELLIPSIS = "…"

Linker = Callable[[Document], str]


@dataclass(frozen=True)
class Card:
    """A card to send: WeCom's template_card body and what each button key means."""

    body: dict[str, Any]
    buttons: list[Button]

    @property
    def task_id(self) -> str:
        return str(self.body["task_id"])


@dataclass
class Outgoing:
    """One step's messages in order: texts and cards; `shown` numbers the text options."""

    messages: list[str | Card] = field(default_factory=list)
    shown: list[Button] = field(default_factory=list)


def fits_card(buttons: list[Button]) -> bool:
    return 0 < len(buttons) <= BUTTONS and all(len(b.label) <= BUTTON_CHARS for b in buttons)


def compose(
    replies: list[Reply], link: Linker, desk_url: str, task_id: Callable[[], str]
) -> Outgoing:
    """Each reply with buttons that fit becomes a card; the rest become text parts."""
    out = Outgoing()
    pending: list[str] = []
    for reply in replies:
        buttons = [button for row in reply.buttons for button in row]
        text = plain(reply.text)
        if reply.document is not None:
            text = f"{text}\n📎 {reply.document.name}\n{link(reply.document)}".strip()
        if fits_card(buttons):
            out.messages.extend(split("\n\n".join(pending), TEXT_BYTES))
            pending = []
            out.messages.append(card(text, buttons, task_id(), desk_url))
            continue
        lines = [text] if text else []
        lines.extend(option_line(row, out.shown) for row in reply.buttons)
        if lines:
            pending.append("\n".join(lines))
    out.messages.extend(split("\n\n".join(pending), TEXT_BYTES))
    return out


def card(text: str, buttons: list[Button], task_id: str, desk_url: str) -> Card:
    """A button_interaction card: the first line as title, the rest below it."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title, rest = (lines[0], lines[1:]) if lines else ("", [])
    if len(title) > TITLE_CHARS:  # the whole first line still shows, below
        rest.insert(0, title)
        title = shorten(title, TITLE_CHARS)
    body_text = "\n".join(rest)
    sub_title = shorten(body_text, SUB_TITLE_CHARS)
    body: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": title},
        "task_id": task_id,
        "card_action": {"type": 1, "url": desk_url},
        "button_list": [
            {"text": button.label, "style": 1, "key": str(index)}
            for index, button in enumerate(buttons)
        ],
    }
    if sub_title:
        body["sub_title_text"] = sub_title
    if sub_title != body_text:  # shortened: say so, and where the rest is
        body["horizontal_content_list"] = [
            {
                "keyname": label("wecom", "more_key"),
                "value": label("wecom", "more_value"),
                "type": 1,
                "url": desk_url,
            }
        ]
    return Card(body, buttons)


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut at the last line or sentence end
    (or the limit) with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = max(head.rfind(mark) for mark in ("\n", "。", "；", "，"))
    if cut >= limit // 2:
        head = head[: cut + 1]
    return head.rstrip("\n，；") + ELLIPSIS
