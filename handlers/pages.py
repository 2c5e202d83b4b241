"""Long lists a page at a time, with 上一页 / 下一页 buttons: no list outgrows a message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chat.callbacks import CallbackData
from chat.events import Button
from dialogs.texts import label

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
