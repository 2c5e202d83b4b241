"""The web chat for everyone (GB/T 37668 → WCAG 2.1 AA; 适老化): axe-core finds nothing on any
page in normal and 长辈模式; an application by keyboard alone; the answer in the polite live
region of the accessibility tree; phones, 200 % zoom, reduced motion; the little things."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import func, select
from stats_history import seed_history
from test_desk_appointments import book

from bot.channels.web.render import bot_message, own_message
from bot.channels.web.server import CHANNEL_KEY
from storage import web_history
from storage.models import Case
from support import GOOD_ANSWERS, Chat, fill_application
from test_staff_browser import bind_browser, invite
from webaxe import violations
from webpage import IDLE, idle, open_chat, say
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

PHONE = {"width": 360, "height": 640}
NARROW = {"width": 320, "height": 568}  # the narrowest phones (WCAG 1.4.10 reflow width)
ZOOMED = {"width": 640, "height": 360}  # a 1280×720 window at 200 % zoom
ELDER = "长辈模式"


async def no_violations(page: Page, where: str) -> None:
    # A bubble fading in is measured at its final colours, not halfway.
    await page.evaluate("Promise.all(document.getAnimations().map(a => a.finished))")
    found = await violations(page)
    assert found == [], f"{where}: {found}"


async def switch_elder_mode(page: Page, on: bool) -> None:
    switch = page.get_by_role("button", name=ELDER)
    if (await switch.get_attribute("aria-pressed") == "true") != on:
        await switch.click()
    await expect(switch).to_have_attribute("aria-pressed", "true" if on else "false")


async def smallest_text_px(page: Page) -> float:
    """The smallest computed font size of any visible text on the page."""
    return float(
        await page.evaluate(
            """() => {
              let least = 1000;
              const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
              while (walk.nextNode()) {
                const el = walk.currentNode.parentElement;
                if (!walk.currentNode.textContent.trim() || !el.checkVisibility()) continue;
                if (el.closest(".visually-hidden")) continue;
                // A chart is an image scaled to its box; its words are in the table beneath.
                if (el.closest("svg")) continue;
                least = Math.min(least, parseFloat(getComputedStyle(el).fontSize));
              }
              return least;
            }"""
        )
    )


async def test_visitor_pages_have_no_wcag_violations_in_normal_and_elder_mode(
    served: Served, browser: Browser
) -> None:
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await open_chat(page, served.url)
    await say(page, "施工许可找哪个部门")  # an answer with contacts as tel:/mailto: links
    await page.get_by_text("查询进度").click()
    await no_violations(page, "chat")
    assert await smallest_text_px(page) < 18

    await switch_elder_mode(page, True)
    assert await smallest_text_px(page) >= 18
    heights = await page.locator("#log button").evaluate_all(
        "buttons => buttons.map(b => b.getBoundingClientRect().height)"
    )
    assert min(heights) >= 48
    await no_violations(page, "chat, 长辈模式")

    # Remembered by this browser: after a reload and on the other pages; not elsewhere.
    await page.reload()
    await page.wait_for_selector(IDLE)
    await expect(page.get_by_role("button", name=ELDER)).to_have_attribute("aria-pressed", "true")
    assert await smallest_text_px(page) >= 18
    login = await context.new_page()
    await login.goto(f"{served.url}desk")
    await expect(login.get_by_role("heading", name="工作人员登录")).to_be_visible()
    await expect(login.get_by_role("button", name=ELDER)).to_have_attribute("aria-pressed", "true")
    await no_violations(login, "login, 长辈模式")
    await switch_elder_mode(login, False)
    await no_violations(login, "login")
    stranger = await (await browser.new_context(viewport=PHONE)).new_page()
    await open_chat(stranger, served.url)
    await expect(stranger.get_by_role("button", name=ELDER)).to_have_attribute(
        "aria-pressed", "false"
    )


async def test_staff_page_and_desk_have_no_wcag_violations_in_normal_and_elder_mode(
    served: Served, browser: Browser
) -> None:
    applicant = Chat(served.app.router, "applicant")
    await fill_application(applicant)
    await applicant.press("提交")
    monday = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    served.app.services.clock = lambda: monday  # a booking today, listed on the desk
    await book(served.app, "booker", "12月7日", "14:30")
    _, code = await invite(served.app, "李娜")
    page = await (await browser.new_context(viewport=PHONE)).new_page()
    await bind_browser(page, served.url, code)
    await idle(page)
    for elder in (False, True):
        await page.goto(served.url)
        await page.wait_for_selector(IDLE)
        await switch_elder_mode(page, elder)
        await no_violations(page, f"staff chat, elder={elder}")
        await page.goto(f"{served.url}desk")
        await expect(page.locator("table.desk tbody tr")).not_to_have_count(0)
        await expect(page.locator("ul.agenda li")).to_have_count(1)
        await no_violations(page, f"desk, elder={elder}")
        assert (await smallest_text_px(page) >= 18) is elder


async def test_stats_audit_agencies_and_refusals_have_no_wcag_violations(
    served: Served, browser: Browser
) -> None:
    await seed_history(served.app)
    _, code = await invite(served.app, "陈晨")  # a lead-unit administrator
    page = await (await browser.new_context(viewport=PHONE)).new_page()
    await bind_browser(page, served.url, code)
    await idle(page)
    await page.goto(f"{served.url}desk")
    for name in ("服务统计", "操作日志", "第三方机构"):  # the desk links to each page
        await expect(page.get_by_role("link", name=name)).to_be_visible()
    pages = {
        "stats": ("desk/stats?from=2025-09-29&to=2025-10-12", "服务统计"),
        "audit": ("desk/audit", "操作日志"),
        "agencies": ("desk/agencies", "第三方专业机构"),
    }
    for elder in (False, True):
        for where, (path, heading) in pages.items():
            await page.goto(served.url + path)
            await expect(page.get_by_role("heading", name=heading)).to_be_visible()
            await expect(page.get_by_role("main")).to_be_visible()
            await switch_elder_mode(page, elder)
            await no_violations(page, f"{where}, elder={elder}")
            assert (await smallest_text_px(page) >= 18) is elder, where
    # Each chart is an image named by its title and described, its table beneath the words.
    await page.goto(served.url + pages["stats"][0])
    charts = page.get_by_role("img")
    assert await charts.count() == 6
    for index in range(6):
        chart = charts.nth(index)
        title = await chart.locator("title").first.text_content()
        await expect(chart).to_have_accessible_name(str(title))
        await expect(chart).to_have_accessible_description(re.compile("见下表"))
        await expect(page.get_by_role("table", name=str(title))).to_be_visible()

    _, window_code = await invite(served.app, "李娜")  # window staff: neither page is theirs
    window = await (await browser.new_context(viewport=PHONE)).new_page()
    await bind_browser(window, served.url, window_code)
    await idle(window)
    for path in ("desk/audit", "desk/stats"):
        for elder in (False, True):
            response = await window.goto(served.url + path)
            assert response is not None and response.status == 403
            await expect(window.get_by_role("heading", name="无权限")).to_be_visible()
            await switch_elder_mode(window, elder)
            await no_violations(window, f"403 {path}, elder={elder}")


async def tab_to(page: Page, label: str, key: str = "Tab") -> None:
    """Move the focus with the keyboard alone until it is on the control named `label`."""
    for _ in range(80):
        await page.keyboard.press(key)
        name = await page.evaluate(
            "() => ['BUTTON', 'A', 'SUMMARY'].includes(document.activeElement.tagName)"
            " ? document.activeElement.textContent.trim() : ''"
        )
        if label in name:
            return
    raise AssertionError(f"{label} is not reachable with {key}")


async def enter(page: Page) -> None:
    await page.keyboard.press("Enter")
    await page.wait_for_selector(IDLE)


async def type_answer(page: Page, text: str) -> None:
    """The focus is already in the text box (moved there by the page); type and Enter."""
    await expect(page.get_by_role("textbox", name="输入消息")).to_be_focused()
    await page.keyboard.type(text)
    await enter(page)


async def test_keyboard_alone_completes_an_application(served: Served, browser: Browser) -> None:
    page = await (await browser.new_context(viewport=PHONE)).new_page()
    await open_chat(page, served.url)
    # Esc closes the 查询进度 panel and leaves the focus on its summary.
    await tab_to(page, "查询进度")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("申请编号")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_label("申请编号")).to_be_hidden()
    await expect(page.locator("#lookup summary")).to_be_focused()
    await tab_to(page, "申请帮代办")
    await enter(page)
    for choice in ("一般项目", "是，已在新区立项", "不是房地产"):
        # After a press the focus is on the answer's first button: Tab on from there.
        await expect(page.locator("#log .msg.bot").last.locator("button").first).to_be_focused()
        await tab_to(page, choice)
        await enter(page)
    for field in ("company", "credit_code", "project_name", "project_code", "contact_name"):
        await type_answer(page, GOOD_ANSWERS[field])
    await type_answer(page, GOOD_ANSWERS["contact_phone"])
    await type_answer(page, GOOD_ANSWERS["project_summary"])
    await tab_to(page, "施工许可", "Shift+Tab")  # from the text box back up to the answer
    await enter(page)
    await tab_to(page, "完成")
    await enter(page)
    await tab_to(page, "提交")
    await enter(page)
    await expect(page.locator("#log")).to_contain_text("您的申请已提交")
    async with served.app.services.db.sessions() as session:
        assert await session.scalar(select(func.count(Case.id))) == 1


async def test_answer_is_announced_in_the_polite_live_region(
    served: Served, browser: Browser
) -> None:
    page = await (await browser.new_context(viewport=PHONE)).new_page()
    await open_chat(page, served.url)
    await say(page, "施工许可找哪个部门")
    answer = "住建环保局"
    # Playwright's view of the accessibility tree: the log, named, holds the answer...
    snapshot = await page.locator("body").aria_snapshot()
    log_part = snapshot.split('- log "对话记录"', 1)
    assert len(log_part) == 2 and answer in log_part[1], snapshot
    assert re.search(r'- link "0731-\d{8}"', log_part[1]), snapshot
    # ...and Chromium's own tree (what a screen reader reads) marks it a polite live region.
    cdp = await page.context.new_cdp_session(page)
    tree = (await cdp.send("Accessibility.getFullAXTree"))["nodes"]
    live = {
        node["nodeId"]
        for node in tree
        if any(
            p["name"] == "live" and p["value"]["value"] == "polite"
            for p in node.get("properties", [])
        )
    }
    spoken = [
        node
        for node in tree
        if node.get("role", {}).get("value") == "StaticText"
        and answer in str(node.get("name", {}).get("value", ""))
    ]
    assert spoken, "the answer is not in the accessibility tree"
    parents = {node["nodeId"]: node.get("parentId") for node in tree}
    for node in spoken:
        ancestor = node.get("parentId")
        while ancestor is not None and ancestor not in live:
            ancestor = parents.get(ancestor)
        assert ancestor is not None, "the answer is outside the live region"

    link = page.locator("#log a", has_text=re.compile(r"^0731-"))
    assert (await link.first.get_attribute("href") or "").startswith("tel:0731")
    assert await link.first.get_attribute("target") is None  # a call, not a new tab
    mail = page.locator("#log a[href^='mailto:']")
    await expect(mail.first).to_have_text(re.compile(r"@example\.gov\.cn$"))


@pytest.mark.parametrize("viewport", [NARROW, ZOOMED], ids=["320px", "zoom200"])
async def test_narrow_phones_and_200_percent_zoom_lose_nothing(
    served: Served, browser: Browser, viewport: dict[str, int]
) -> None:
    page = await (await browser.new_context(viewport=viewport)).new_page()
    await open_chat(page, served.url)
    for elder in (False, True):
        await switch_elder_mode(page, elder)
        wide = await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert wide <= 0, f"scrolls sideways by {wide}px (elder={elder})"
        for control in (
            page.locator("#log button", has_text="申请帮代办").last,
            page.get_by_role("textbox", name="输入消息"),
            page.get_by_role("button", name="发送", exact=True),
            page.get_by_role("button", name="拍照上传"),
        ):
            await control.scroll_into_view_if_needed()
            await expect(control).to_be_in_viewport()
    await say(page, "帮代办收费吗")
    await expect(page.locator("#log .msg.bot").last).to_be_in_viewport()


async def test_reduced_motion_is_honoured(served: Served, browser: Browser) -> None:
    moving = await (await browser.new_context(reduced_motion="no-preference")).new_page()
    still = await (await browser.new_context(reduced_motion="reduce")).new_page()
    for page, animation in ((moving, "appear"), (still, "none")):
        await open_chat(page, served.url)
        await say(page, "帮代办收费吗")
        # The greeting came with the page: it is not faded in again when the chat confirms it.
        names = await page.locator("#log .msg").evaluate_all(
            "items => items.map(i => getComputedStyle(i).animationName)"
        )
        assert names[0] == "none" and set(names[1:]) == {animation}


async def test_greeting_comes_without_a_visitor_bubble(served: Served, browser: Browser) -> None:
    page = await (await browser.new_context()).new_page()
    await open_chat(page, served.url)
    await expect(page.locator("#log .msg.bot")).to_have_count(1)
    await expect(page.locator("#log .msg.bot")).to_contain_text("您好")
    await expect(page.locator("#log .msg.me")).to_have_count(0)
    await page.reload()
    await page.wait_for_selector(IDLE)
    await expect(page.locator("#log .msg")).to_have_count(1)  # kept in history, not resent


async def test_times_read_today_or_the_date(served: Served, browser: Browser) -> None:
    china = dt.timezone(dt.timedelta(hours=8))
    context = await browser.new_context(timezone_id="Asia/Shanghai")
    page = await context.new_page()
    await page.clock.set_fixed_time(dt.datetime(2026, 12, 5, 15, 0, tzinfo=china))
    await open_chat(page, served.url)  # the greeting makes this browser's chat
    channel = served.web_app[CHANNEL_KEY]
    chat_id = next(iter(channel.hub.chat_ids()))
    await channel.history.flush()  # the greeting first, then the older messages we add
    async with served.app.services.db.transaction() as session:
        web_history.append(
            session,
            chat_id,
            [
                own_message("去年的问题", at=dt.datetime(2025, 11, 30, 9, 5, tzinfo=china)),
                bot_message("上周的回答", [], at=dt.datetime(2026, 12, 1, 16, 40, tzinfo=china)),
                own_message("今天的问题", at=dt.datetime(2026, 12, 5, 10, 32, tzinfo=china)),
            ],
        )
    await page.reload()
    await page.wait_for_selector(IDLE)
    times = await page.locator("#log .msg time").all_inner_texts()
    assert times[-3:] == ["2025年11月30日 09:05", "12月1日 16:40", "今天 10:32"]


async def test_photo_from_the_camera_is_uploaded_and_the_query_code_is_explained(
    served: Served, browser: Browser
) -> None:
    page = await (await browser.new_context(viewport=PHONE)).new_page()
    await open_chat(page, served.url)
    camera = page.locator("#camera")
    assert await camera.get_attribute("accept") == "image/*"
    assert await camera.get_attribute("capture") == "environment"  # the back camera opens
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="拍照上传").click()
    photo = b"\xff\xd8\xff\xe0" + b"\0" * 2048 + b"\xff\xd9"
    await (await chooser.value).set_files(
        {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )
    # No upload is asked for yet: refused before its body is read, and the core says why.
    await page.wait_for_selector(IDLE)
    await expect(page.locator("#log .msg.bot")).to_have_count(2)
    await expect(page.locator("#log .msg.bot").last).to_contain_text("当前没有需要上传材料")

    await page.get_by_text("查询进度").click()
    await expect(page.get_by_label("查询码")).to_have_accessible_description(
        re.compile("确认消息.*申请表")
    )
