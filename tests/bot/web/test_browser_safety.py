"""Hostile input in every field of the web chat executes nothing (checked in Chromium), and
补正 uploads go through the page with Telegram's type and size rules."""

from __future__ import annotations

import json
import re

from playwright.async_api import Browser, Dialog, Page, expect

from support import GOOD_ANSWERS, bind_staff, notices_to
from webpage import apply, idle, open_chat, press, say
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)

XSS = {
    "img": '<img src=x onerror="window.__xss=1">',
    "script": "<script>window.__xss=2</script>",
    "svg": '"><svg onload=window.__xss=3>',
    "link": '<a href="javascript:window.__xss=4">点我</a>',
    "entity": "&lt;b&gt;粗&lt;/b&gt; <b>真的粗</b>",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100
HOSTILE = "<img src=x onerror=window.__xss=5>.png"


async def assert_nothing_ran(page: Page, dialogs: list[Dialog]) -> None:
    assert await page.evaluate("window.__xss") is None
    assert dialogs == []
    hostile = "#log img, #log script, #log svg, #log iframe, #log a[href^='javascript']"
    assert await page.locator(hostile).count() == 0


async def test_hostile_input_in_every_field_is_shown_as_text(
    served: Served, browser: Browser
) -> None:
    page = await browser.new_page()
    dialogs: list[Dialog] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog))
    await open_chat(page, served.url)

    for payload in XSS.values():  # the message box: free text goes to the FAQ / 首问
        await say(page, payload)
        # The bubble is the payload as text, then the time it was sent.
        shown = re.compile("^" + re.escape(payload))
        await expect(page.locator("#log .msg.me").last).to_have_text(shown)
    answers = {
        **GOOD_ANSWERS,
        "company": "星城" + XSS["img"],
        "project_name": "园区" + XSS["script"],
        "contact_name": "张" + XSS["svg"],
        "project_summary": XSS["link"] + "项目位于湘江新区，总投资约5亿元。",
    }
    await apply(page, answers)
    review = page.locator("#log .msg.bot").last
    for value in ("星城" + XSS["img"], "园区" + XSS["script"], "张" + XSS["svg"]):
        await expect(review).to_contain_text(value)
    await press(page, "提交")
    await expect(page.locator("#log")).to_contain_text("您的申请已提交")

    # The 查询进度 fields, and a button label forged on a second socket of the same chat.
    await page.get_by_text("查询进度").click()
    await page.get_by_label("申请编号").fill(XSS["svg"][:20])
    await page.get_by_label("查询码").fill(XSS["img"][:6])
    await page.get_by_role("button", name="查询", exact=True).click()
    await idle(page)
    forged = json.dumps({"type": "button", "data": "m:menu", "label": XSS["img"]})
    await page.evaluate(
        """forged => new Promise(resolve => {
            const ws = new WebSocket(new URL("ws", location.href).href.replace(/^http/, "ws"));
            ws.onopen = () => {
                ws.send(forged);
                setTimeout(() => { ws.close(); resolve(); }, 500);
            };
        })""",
        forged,
    )
    await expect(page.locator("#log .msg.me", has_text=XSS["img"])).not_to_have_count(0)
    await expect(page.locator("#log b", has_text="真的粗")).to_have_count(0)  # own text: no tags
    await assert_nothing_ran(page, dialogs)
    await page.reload()  # the same again from the history
    await page.wait_for_selector("body[data-history]")
    await expect(page.locator("#log .msg.me", has_text=XSS["script"])).not_to_have_count(0)
    await assert_nothing_ran(page, dialogs)


async def test_supplement_upload_through_the_page(served: Served, browser: Browser) -> None:
    app = served.app
    window = await bind_staff(app, "李娜")
    page = await browser.new_page()
    dialogs: list[Dialog] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog))
    await open_chat(page, served.url)
    await apply(page, GOOD_ANSWERS)
    await press(page, "提交")

    (new_case,) = await notices_to(app, window)
    await window.press_data(new_case.buttons[0][0]["data"])
    await window.press("受理")
    await window.say("材料齐全")
    await window.press("材料交接完成")
    await window.press("要求补正")
    await window.say("1. 施工合同")
    asked = page.locator("#log .msg.notice", has_text="施工合同")
    await expect(asked).to_have_count(1)
    await press(page, "上传材料")

    chooser = page.locator("#file")
    await chooser.set_input_files(
        {"name": "病毒.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00"}
    )
    await idle(page)
    await expect(page.locator("#log .msg.bot").last).to_contain_text("20 MB")
    await chooser.set_input_files({"name": HOSTILE, "mimeType": "image/png", "buffer": PNG})
    await idle(page)
    await expect(page.locator("#log .msg.bot").last).to_contain_text("已收到")
    await expect(page.locator("#log .msg.me").last).to_contain_text(HOSTILE)
    await press(page, "上传完成")
    async with app.services.db.sessions() as session:
        from sqlalchemy import select

        from storage.models import Case, CaseFile

        case = await session.scalar(select(Case))
        assert case is not None and case.status == "in_progress"
        uploaded = (
            await session.scalars(select(CaseFile).where(CaseFile.kind == "supplement"))
        ).all()
        assert [f.name.endswith(".png") for f in uploaded] == [True]
    await assert_nothing_ran(page, dialogs)
