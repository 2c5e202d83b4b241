"""Buttons as numbered options for text-only channels (console, WeChat): shown as
`[1] 提交`, pressed by typing the number or the label."""

from __future__ import annotations

import html
import re

from chat.events import Button

_TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """Telegram-HTML to plain text."""
    return html.unescape(_TAG.sub("", text))


def pick(line: str, buttons: list[Button]) -> Button | None:
    """The button a typed line presses: its number or its label; None for free text."""
    wanted = line.strip()
    if wanted.isdigit() and 1 <= int(wanted) <= len(buttons):
        return buttons[int(wanted) - 1]
    for button in buttons:
        if wanted and wanted == button.label.strip():
            return button
    return None


def option_line(row: list[Button], shown: list[Button]) -> str:
    """One row of buttons as `[n] label` cells, numbered after those already `shown`."""
    cells = []
    for button in row:
        shown.append(button)
        cells.append(f"[{len(shown)}] {button.label}")
    return "  ".join(cells)
