"""Staff in a real headless Chromium: bind the browser, get a routed question while the page
is closed, answer it, accept a case from /desk, be signed out by an administrator."""

from __future__ import annotations

import datetime as dt
import re

from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bot.app import App
from bot.channels.web.delivery import CHANNEL
from storage import outbox, questions
from storage.models import Case, CaseStatus, OutboxMessage, Staff
from storage.outbox import Recipient
from support import Chat, bind_staff, fill_application
from webpage import open_chat, press, say
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

QUESTION = "我们厂区门口的路灯坏了好几天，能不能帮忙反映一下"
ANSWER = "已联系市政部门，本周内修复"


async def invite(app: App, name: str) -> tuple[Staff, str]:
    async with app.services.db.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == name))
        assert staff is not None
        code = await questions.create_invite(session, staff.id, dt.timedelta(hours=1))
    return staff, code


async def bind_browser(page: Page, url: str, code: str) -> None:
    """Type /bind CODE in the chat; the page comes back as the staff member's."""
    await open_chat(page, url)
    await page.get_by_role("textbox", name="输入消息").fill(f"/bind {code}")
    await page.get_by_role("button", name="发送", exact=True).click()
    await page.wait_for_selector('body[data-staff="true"][data-connected="true"]')


async def rows_to(app: App, staff: Staff, text: str) -> list[tuple[str, str]]:
    """(channel, chat id) of the outbox rows for this staff member whose text has `text`."""
    web_chat = f"staff-{staff.id}"
    async with app.services.db.sessions() as session:
        found = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [
            (row.channel, row.chat_id)
            for row in found
            if text in row.text and row.chat_id in (web_chat, "staff-李娜")
        ]


async def test_staff_binds_answers_accepts_from_desk_and_is_signed_out(
    served: Served, browser: Browser
) -> None:
    app = served.app
    telegram_like = await bind_staff(app, "李娜")  # bound in another channel first
    admin = await bind_staff(app, "陈晨")
    li, code = await invite(app, "李娜")

    staff_context = await browser.new_context()
    page = await staff_context.new_page()
    await bind_browser(page, served.url, code)
    await expect(page.locator("#log")).to_contain_text("绑定成功：李娜")
    await expect(page.get_by_role("link", name="待办事项")).to_be_visible()
    (cookie,) = [c for c in await staff_context.cookies() if c["name"] == "bdb_staff"]
    assert cookie["httpOnly"]
    days = (cookie["expires"] - dt.datetime.now(dt.UTC).timestamp()) / 86400
    assert 29 < days <= 30
    await page.close()  # the staff member leaves; a question arrives meanwhile

    enterprise = await (await browser.new_context()).new_page()
    await open_chat(enterprise, served.url)
    await say(enterprise, QUESTION)
    await expect(enterprise.locator("#log .msg.bot").last).to_contain_text("李娜")
    # One notice per channel: the other binding stayed and got it too.
    assert sorted(await rows_to(app, li, "路灯")) == [
        ("test", telegram_like.user.chat_id),
        (CHANNEL, f"staff-{li.id}"),
    ]

    page = await staff_context.new_page()
    await open_chat(page, served.url)
    routed = page.locator("#log .msg.notice", has_text="路灯")
    await expect(routed).to_have_count(1)
    await expect(routed.locator("button", has_text="回复")).to_be_visible()
    await press(page, "回复")
    await say(page, ANSWER)
    await expect(page.locator("#log .msg.bot").last).to_contain_text("已发送")
    answer = enterprise.locator("#log .msg.notice", has_text=ANSWER)
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("李娜")

    applicant = Chat(app.router, "applicant")
    await fill_application(applicant)
    await applicant.press("提交")
    number = re.search(r"BDB-\d{4}-\d{6}", applicant.text)
    assert number, applicant.text

    await page.goto(f"{served.url}desk")
    await expect(page.get_by_role("heading", name="待办事项")).to_be_visible()
    row = page.locator("table.desk tr", has_text=number.group(0))
    await expect(row).to_have_count(1)
    await row.get_by_role("link").click()
    await page.wait_for_selector('body[data-staff="true"][data-connected="true"]')
    await expect(page.locator("#log .msg.bot").last).to_contain_text(number.group(0))
    await page.locator("#log button").filter(has_text=re.compile("^受理$")).last.click()
    await say(page, "材料齐全，予以受理")
    await expect(page.locator("#log")).to_contain_text("已受理")
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number.group(0)))
        assert case is not None and case.status == CaseStatus.ACCEPTED and case.handler_id == li.id

    await admin.say("/devices 李娜")
    await admin.press("注销")
    assert "已注销" in admin.text
    # Signed out at once: the open page is told and reloads as the visitor's own chat.
    await expect(page.locator('body[data-staff="true"]')).to_have_count(0)
    await page.goto(f"{served.url}desk")
    await expect(page.get_by_role("heading", name="工作人员登录")).to_be_visible()
    assert number.group(0) not in await page.content()
    # The Telegram-like binding is untouched.
    await telegram_like.say("/inbox")
    assert number.group(0) in telegram_like.text


async def test_staff_page_counts_unread_notices_in_the_tab_title(
    served: Served, browser: Browser
) -> None:
    li, code = await invite(served.app, "李娜")
    page = await (await browser.new_context()).new_page()
    await bind_browser(page, served.url, code)
    await expect(page).to_have_title("帮代办助手")
    if await page.evaluate("Notification.permission") == "default":
        await expect(page.get_by_role("button", name="开启桌面通知")).to_be_visible()
    await page.evaluate("() => { document.hasFocus = () => false; }")  # looking elsewhere
    async with served.app.services.db.transaction() as session:
        for n in (1, 2):
            outbox.enqueue(session, Recipient(CHANNEL, f"staff-{li.id}"), f"通知{n}", f"t:{n}")
    await expect(page).to_have_title("(2) 帮代办助手")
    await expect(page.locator("#log .msg.notice")).to_have_count(2)
    await page.evaluate(
        "() => { document.hasFocus = () => true; window.dispatchEvent(new Event('focus')); }"
    )
    await expect(page).to_have_title("帮代办助手")
