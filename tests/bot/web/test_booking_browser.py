"""预约洽谈 end to end in a real headless Chromium: an enterprise books a slot in the web
chat and downloads the .ics; the window staff member, signed in in another browser, is told,
confirms, and sees it on /desk and /appointments; the enterprise moves it (the staff told
and asked to confirm again, the desk shows the new time) and cancels it (gone from the desk)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

from icalendar import Calendar
from playwright.async_api import Browser, Page, expect

from services.workdays import CHINA
from test_staff_browser import bind_browser, invite
from webpage import idle, open_chat, press, say
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

MONDAY = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)


async def desk_agenda(page: Page, url: str) -> list[str]:
    """The week's appointments on the desk, as their lines read."""
    await page.goto(f"{url}desk?agenda=week")
    await expect(page.get_by_role("heading", name=re.compile("本周预约"))).to_be_visible()
    return await page.locator("ul.agenda li").all_inner_texts()


async def test_enterprise_books_moves_and_cancels_while_the_window_sees_it(
    served: Served, browser: Browser
) -> None:
    app = served.app
    app.services.clock = lambda: MONDAY.astimezone(dt.UTC)
    _, code = await invite(app, "李娜")  # the window's browser, signed in beforehand
    staff = await (await browser.new_context()).new_page()
    await bind_browser(staff, served.url, code)
    await idle(staff)
    enterprise = await (await browser.new_context()).new_page()
    await open_chat(enterprise, served.url)
    await say(enterprise, "/book")
    await press(enterprise, "新的洽谈事项")
    await say(enterprise, "新建厂房项目前期审批咨询")
    await press(enterprise, "12月8日")
    await press(enterprise, "09:00")
    await say(enterprise, "湖南星城智造科技有限公司")
    await say(enterprise, "张伟")
    await say(enterprise, "13800138000")
    await press(enterprise, "提交")
    await expect(enterprise.locator("#log")).to_contain_text("预约成功")
    found = re.search(r"YY-\d{6}", await enterprise.locator("#log").inner_text())
    assert found is not None
    number = found.group(0)

    # The .ics is a download link in the chat, in China time.
    link = enterprise.locator("#log a", has_text=f"{number}.ics").last
    async with enterprise.expect_download() as download:
        await link.click()
    saved = Path(str(await (await download.value).path()))
    content = await asyncio.to_thread(saved.read_bytes)
    (event,) = Calendar.from_ical(content).walk("VEVENT")
    start = event.decoded("dtstart")
    assert str(start.tzinfo) == "Asia/Shanghai"
    assert start.replace(tzinfo=None) == dt.datetime(2026, 12, 8, 9, 0)

    # The window staff member, in their own browser: told, confirms, sees it on the desk.
    await expect(staff.locator("#log")).to_contain_text("新的预约洽谈")
    await press(staff, "确认参加")
    await expect(staff.locator("#log .msg.bot").last).to_contain_text("已确认贵单位参加")
    (line,) = await desk_agenda(staff, served.url)
    assert number in line and "12月8日 09:00" in line and "张伟" in line
    await staff.goto(served.url)
    await idle(staff)
    await say(staff, "/appointments week")
    await expect(staff.locator("#log .msg.bot").last).to_contain_text(number)

    # The enterprise moves it: the staff member is asked to confirm again; the desk follows.
    await say(enterprise, "/bookings")
    await press(enterprise, "改期")
    await press(enterprise, "12月9日")
    await press(enterprise, "14:30")
    await expect(enterprise.locator("#log")).to_contain_text("已改到 2026-12-09 14:30")
    await expect(staff.locator("#log")).to_contain_text("您此前已确认参加，时间已变，请重新确认")
    await press(staff, "确认参加")  # the new time, confirmed anew
    await expect(staff.locator("#log .msg.bot").last).to_contain_text("2026-12-09 14:30")
    (line,) = await desk_agenda(staff, served.url)
    assert number in line and "12月9日 14:30" in line

    # The enterprise cancels it: the staff member is told; the desk lists nothing.
    await say(enterprise, "/bookings")
    await press(enterprise, "取消预约")
    await expect(enterprise.locator("#log .msg.bot").last).to_contain_text("已取消")
    assert await desk_agenda(staff, served.url) == []
    await expect(staff.locator(".empty").first).to_contain_text("本周暂无预约")
    await staff.goto(served.url)
    await idle(staff)
    await expect(staff.locator("#log")).to_contain_text("您此前已确认参加，该预约已取消")
