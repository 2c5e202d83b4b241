"""Long lists a page at a time, with 上一页 / 下一页 buttons: no list outgrows a message."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from chat.callbacks import CallbackData
from chat.events import Button
from dialogs.texts import label
from storage.cases import Keyset

T = TypeVar("T")
CURSOR = re.compile(r"(\d{1,5})([np])(\d{1,12})")

PAGE_SIZE = 10


class PageRef(CallbackData):
    """A 上一页 / 下一页 button; each list's kind of it is one prefix."""

    page: str


@dataclass(frozen=True)
class Page:
    number: int  # from 0
    total: int  # items in the whole list
    size: int = PAGE_SIZE

    @classmethod
    def parse(cls, text: str, total: int = 0, size: int = PAGE_SIZE) -> Page:
        """The page a button asked for (anything odd means the first)."""
        return cls(int(text) if text.isdigit() and len(text) < 6 else 0, total, size)

    @property
    def offset(self) -> int:
        return self.number * self.size

    @property
    def count(self) -> int:
        return max(1, -(-self.total // self.size))

    def buttons(self, data: Callable[[int], CallbackData]) -> list[Button]:
        """上一页 / 下一页 where there is one; `data` makes a page number's button data."""
        row = []
        if self.number > 0:
            row.append(data(self.number - 1).button(label("buttons", "prev_page")))
        if self.offset + self.size < self.total:
            row.append(data(self.number + 1).button(label("buttons", "next_page")))
        return row


@dataclass(frozen=True)
class Cursor:
    """A page of a long list addressed by the row it starts from, not by an offset, so a
    late page costs what the first does. Button data `<page><n|p><row id>`: the rows after
    (n) or before (p) that row; the page number is only shown."""

    number: int = 0
    after: int | None = None
    before: int | None = None
    size: int = PAGE_SIZE

    @classmethod
    def parse(cls, text: str, size: int = PAGE_SIZE) -> Cursor:
        """The page a button asked for (anything odd, an old page number too, means the first)."""
        found = CURSOR.fullmatch(text)
        if found is None:
            return cls(size=size)
        number, way, anchor = int(found[1]), found[2], int(found[3])
        if way == "n":
            return cls(number, after=anchor, size=size)
        return cls(number, before=anchor, size=size)

    @property
    def keyset(self) -> Keyset:
        return Keyset(self.after, self.before, self.size)

    def window(
        self,
        rows: list[T],
        row_id: Callable[[T], int],
        total: int,
        data: Callable[[str], CallbackData],
    ) -> tuple[list[T], Page, list[Button]]:
        """From the page's rows as the query gave them (one extra when the list goes on, in
        reverse order when going back): the rows to show, the Page to print, the pager."""
        more = len(rows) > self.size
        shown = rows[: self.size]
        if self.before is not None:
            shown.reverse()
            has_prev, has_next = more, True
        else:
            has_prev, has_next = self.after is not None, more
        number = self.number if has_prev else 0
        buttons = []
        if has_prev and shown:
            back = data(f"{max(number - 1, 0)}p{row_id(shown[0])}")
            buttons.append(back.button(label("buttons", "prev_page")))
        if has_next and shown:
            onward = data(f"{number + 1}n{row_id(shown[-1])}")
            buttons.append(onward.button(label("buttons", "next_page")))
        return shown, Page(number, max(total, len(shown)), self.size), buttons
