"""Driving the web chat page like a person: type in 输入消息, press buttons, read messages."""

from __future__ import annotations

from playwright.async_api import Page, expect

IDLE = 'body[data-connected="true"][data-waiting="0"]'


async def idle(page: Page) -> None:
    """Wait until every message sent has its complete answer."""
    await page.wait_for_selector(IDLE, timeout=20_000)


async def open_chat(page: Page, url: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("body[data-history]", timeout=20_000)
    await idle(page)


async def say(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="输入消息").fill(text)
    await page.get_by_role("button", name="发送", exact=True).click()
    await idle(page)


async def press(page: Page, label: str) -> None:
    """Press the newest button whose label contains this text."""
    await page.locator("#log button", has_text=label).last.click()
    await idle(page)


async def bot_texts(page: Page) -> list[str]:
    return await page.locator("#log .msg.bot").all_inner_texts()


async def expect_last(page: Page, text: str) -> None:
    await expect(page.locator("#log .msg.bot").last).to_contain_text(text)


async def apply(
    page: Page, answers: dict[str, str], items: tuple[str, ...] = ("施工许可",)
) -> None:
    """Walk the application dialog to its review page by typing and clicking."""
    await press(page, "申请帮代办")
    await press(page, "一般项目")
    await press(page, "是，已在新区立项")
    await press(page, "不是房地产")
    for field in (
        "company",
        "credit_code",
        "project_name",
        "project_code",
        "contact_name",
        "contact_phone",
        "project_summary",
    ):
        await say(page, answers[field])
    for item in items:
        await press(page, item)
    await press(page, "完成")
