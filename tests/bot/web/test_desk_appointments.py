"""今日/本周预约 on /desk: the same appointments /appointments shows in the chat, for the
window all of them, for a unit only what it attends; today's by default, the week's on a
link that keeps the work list's filters."""

from __future__ import annotations

import datetime as dt
import html
import re

from test_staff_http import desk_page, new_client, sign_in

from bot.app import App
from services.workdays import CHINA
from support import Chat, bind_staff, walk_to_booking_review
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)

MONDAY = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)
AGENDA_ITEM = re.compile(r'<li data-kind="(\w+)" data-ref="([^"]+)">')


def set_clock(app: App, moment: dt.datetime) -> None:
    app.services.clock = lambda: moment.astimezone(dt.UTC)


def agenda(page: str) -> set[str]:
    """The appointments listed on a /desk page, as kind:number."""
    return {f"{kind}:{ref}" for kind, ref in AGENDA_ITEM.findall(page)}


async def book(app: App, chat_id: str, day: str, slot: str) -> str:
    """An enterprise books a new subject (政务服务中心 attends) and gets its 预约号."""
    chat = Chat(app.router, chat_id)
    await walk_to_booking_review(chat, day, slot)
    await chat.press("提交")
    assert "预约成功" in chat.text, chat.text
    (number,) = {n for n in re.findall(r"[A-Z]{2,3}-\d{6}", chat.text)}
    return number


async def test_desk_lists_the_days_and_the_weeks_appointments_like_the_chat(
    served: Served,
) -> None:
    app = served.app
    set_clock(app, MONDAY)
    tuesday = await book(app, "e1", "12月8日", "09:00")
    today = await book(app, "e2", "12月7日", "14:30")
    window = await bind_staff(app, "李娜")
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        page = await desk_page(client, served)
        assert "今日预约" in page and agenda(page) == {f"booking:{today}"}
        assert "张伟" in page and "14:30" in page
        week = html.unescape(re.search(r'href="([^"]*)">查看本周预约', page)[1])  # type: ignore[index]
        page = await desk_page(client, served, week.removeprefix("desk"))
        assert "本周预约（12月7日至12月13日）" in page and "12月8日 09:00" in page
        assert agenda(page) == {f"booking:{today}", f"booking:{tuesday}"}
        # The week's link keeps the work list's filters, and back to today.
        page = await desk_page(client, served, "?kind=case&agenda=week")
        assert 'href="desk?kind=case">只看今日预约' in page
    # The chat's /appointments week shows the same bookings.
    await window.say("/appointments week")
    assert today in window.text and tuesday in window.text

    async with new_client() as client:  # a unit that does not attend sees none of them
        await sign_in(served, client, "许芳")
        page = await desk_page(client, served, "?agenda=week")
        assert agenda(page) == set() and "本周暂无预约" in page
