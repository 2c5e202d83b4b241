"""The web chat in a real headless Chromium: applying, history, notices, binding with 查询码."""

from __future__ import annotations

import re

import docx
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bot.channels.web.delivery import CHANNEL
from bot.channels.web.server import CHANNEL_KEY
from storage import outbox
from storage.models import Applicant, Case, OutboxMessage, OutboxStatus
from storage.outbox import Recipient
from support import GOOD_ANSWERS, bind_staff, notices_to
from webpage import apply, bot_texts, open_chat, press, say
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

ACCEPTED = "已受理"


async def submitted_case(page: Page) -> tuple[str, str]:
    text = "\n".join(await bot_texts(page))
    number = re.search(r"BDB-\d{4}-\d{6}", text)
    code = re.search(r"查询码：([0-9A-Z]{8})", text)
    assert number and code, text
    return number.group(0), code.group(1)


async def web_notices(served: Served, chat_id: str) -> list[OutboxMessage]:
    async with served.app.services.db.sessions() as session:
        query = select(OutboxMessage).where(
            OutboxMessage.channel == CHANNEL, OutboxMessage.chat_id == chat_id
        )
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def test_visitor_applies_reloads_gets_notice_once_and_binds_elsewhere(
    served: Served, browser: Browser
) -> None:
    app = served.app
    window = await bind_staff(app, "李娜")
    context = await browser.new_context()
    page = await context.new_page()
    await open_chat(page, served.url)
    await expect(page.locator("#log button", has_text="申请帮代办").last).to_be_visible()
    await expect(page.get_by_role("textbox", name="输入消息")).to_be_visible()

    await apply(page, GOOD_ANSWERS)
    await press(page, "提交")
    await expect(page.locator("#log")).to_contain_text("您的申请已提交")
    number, code = await submitted_case(page)
    # The printable form arrives as an outbox notice with a download link.
    form_link = page.locator("#log a", has_text="下载申请表（.docx）").last
    await expect(form_link).to_be_visible()
    async with page.expect_download() as download:
        await form_link.click()
    assert (await download.value).suggested_filename.endswith(f"{number}.docx")
    printed = docx.Document(str(await (await download.value).path()))
    assert f"查询码：{code}" in "\n".join(p.text for p in printed.paragraphs)

    shown = await page.locator("#log .msg").count()
    await page.reload()
    await page.wait_for_selector("body[data-history]")
    await expect(page.locator("#log .msg")).to_have_count(shown)
    await expect(page.locator("#log")).to_contain_text(f"申请编号：{number}")
    chat_id = await _chat_id(served, number)
    await page.close()  # the visitor leaves; staff accept meanwhile

    (new_case,) = await notices_to(app, window)
    await window.press_data(new_case.buttons[0][0]["data"])
    await window.press("受理")
    await window.say("材料齐全")
    pending = [n for n in await web_notices(served, chat_id) if ACCEPTED in n.text]
    assert [n.status for n in pending] == [OutboxStatus.PENDING]

    page = await context.new_page()
    await open_chat(page, served.url)
    notice = page.locator("#log .msg.notice", has_text=ACCEPTED)
    await expect(notice).to_have_count(1)
    await page.reload()
    await page.wait_for_selector("body[data-history]")
    await expect(page.locator("#log .msg", has_text=ACCEPTED)).to_have_count(1)
    (delivered,) = [n for n in await web_notices(served, chat_id) if ACCEPTED in n.text]
    assert delivered.status == OutboxStatus.SENT

    # A second browser: nothing without the code, refused with a wrong one, bound with it.
    other = await (await browser.new_context()).new_page()
    await open_chat(other, served.url)
    form_url = f"{served.url}form/{number}.docx"
    assert (await other.request.get(form_url)).status == 404
    await say(other, f"/status {number}")
    await expect(other.locator("#log .msg.bot").last).to_contain_text("未找到该申请")
    await lookup(other, number, "AAAAAA" if code != "AAAAAA" else "BBBBBB")
    await expect(other.locator("#log .msg.bot").last).to_contain_text("查询码不正确")
    await lookup(other, number, code.lower())
    await expect(other.locator("#log .msg.bot").last).to_contain_text(number)
    await expect(other.locator("#log .msg.bot").last).to_contain_text(ACCEPTED)
    assert (await other.request.get(form_url)).status == 200
    await press(other, "下载申请表")  # the core sends the file; the page offers a link
    link = other.locator("#log a", has_text=f"{number}.docx").last
    async with other.expect_download() as download:
        await link.click()
    assert (await download.value).suggested_filename.endswith(f"{number}.docx")
    href = await link.get_attribute("href")
    assert href and (await page.request.get(f"{served.url}{href}")).status == 404  # not theirs


async def lookup(page: Page, number: str, code: str) -> None:
    """The page's 查询进度: case number and 查询码."""
    if not await page.locator("#lookup").evaluate("details => details.open"):
        await page.get_by_text("查询进度").click()
    await page.get_by_label("申请编号").fill(number)
    await page.get_by_label("查询码").fill(code)
    await page.get_by_role("button", name="查询", exact=True).click()
    await page.wait_for_selector('body[data-waiting="0"]')


async def _chat_id(served: Served, number: str) -> str:
    async with served.app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        applicant = await session.get(Applicant, case.applicant_id)
        assert applicant is not None and applicant.channel == CHANNEL
        return applicant.chat_id


async def test_page_reconnects_by_itself_and_gets_what_it_missed(
    served: Served, browser: Browser
) -> None:
    page = await browser.new_page()
    await open_chat(page, served.url)
    channel = served.web_app[CHANNEL_KEY]
    chat_id = next(iter(channel.hub.chat_ids()))
    await channel.hub.close_all()  # as when a phone suspends the tab
    await page.wait_for_selector("body:not([data-connected])")
    async with served.app.services.db.transaction() as session:
        outbox.enqueue(session, Recipient(CHANNEL, chat_id), "<b>离线期间的通知</b>", key="t:1")
    await page.wait_for_selector('body[data-connected="true"]')
    notice = page.locator("#log .msg.notice b", has_text="离线期间的通知")
    await expect(notice).to_have_count(1)
    await expect(page.locator("#conn")).to_have_text("已连接")
