"""Splitting long messages: every part fits, the order and the markup survive."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from chat.events import Button, Reply
from dialogs.fit import LIMIT, fit, plain, size, split_html


class _Balanced(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ok = True

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.ok = self.ok and bool(self.stack) and self.stack.pop() == tag


def balanced(text: str) -> bool:
    parser = _Balanced()
    parser.feed(text)
    return parser.ok and not parser.stack


def test_a_long_bold_block_is_split_with_its_tags_closed_and_reopened() -> None:
    text = "<b>" + "很长的经办人意见" * 1200 + "</b>\n末行 &amp; 结束"
    parts = split_html(text)
    assert len(parts) >= 3
    assert all(size(p) <= LIMIT and balanced(p) for p in parts)
    assert plain("".join(parts)) == plain(text)


def test_emoji_count_twice() -> None:
    parts = split_html("😀" * 3000)
    assert len(parts) == 2 and all(size(p) <= LIMIT for p in parts)


@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=40))
def test_any_text_keeps_every_character_in_order(lines: list[str]) -> None:
    text = "\n".join(f"<b>{i}</b> {line}" for i, line in enumerate(lines)) * 3
    parts = split_html(text, 500)
    assert all(size(p) <= 500 for p in parts)
    assert "".join(plain(p) for p in parts).replace("\n", "") == plain(text).replace("\n", "")


def test_fit_keeps_buttons_on_the_last_part() -> None:
    button = Button("下一步", "x:1")
    replies = fit([Reply("短", [[button]]), Reply("长" * 9000, [[button]])])
    assert [r.buttons for r in replies] == [[[button]], [], [], [[button]]]
    assert "".join(r.text for r in replies[1:]) == "长" * 9000
