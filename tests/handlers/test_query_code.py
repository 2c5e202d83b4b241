"""The 查询码: given at submission; `/status BDB-… 查询码` lets another chat follow the case."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.app import App
from storage.cases import CODE_ALPHABET, CODE_LENGTH
from storage.models import Case
from support import Chat, bind_staff, fill_application, notices_to


async def submit(chat: Chat) -> tuple[str, str]:
    await fill_application(chat)
    await chat.press("提交")
    number = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    code = re.search(r"查询码：<b>([0-9A-Z]+)</b>", chat.text)
    assert number and code, chat.text
    return number.group(0), code.group(1)


async def test_submission_gives_a_query_code_stored_with_the_case(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
    assert case is not None and case.query_code == code


async def test_another_chat_sees_the_case_only_with_its_code(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    other = Chat(app.router, "other-device")
    await other.say(f"/status {number}")
    assert "未找到该申请" in other.text
    wrong = "".join(CODE_ALPHABET[(CODE_ALPHABET.index(c) + 1) % len(CODE_ALPHABET)] for c in code)
    await other.say(f"/status {number} {wrong}")
    assert "查询码不正确" in other.text and "建设单位" not in other.text
    await other.say(f"/status BDB-2026-999999 {code}")
    assert "查询码不正确" in other.text
    await other.say(f"/status {number.lower()} {code.lower()}")
    assert number in other.text and "建设单位" in other.text
    await other.say(f"/status {number}")  # bound now: the number alone is enough
    assert number in other.text and "未找到" not in other.text
    await other.say("/cases")
    assert number in other.text
    third = Chat(app.router, "third-device")
    await third.say("/cases")
    assert number not in third.text


async def test_owner_stays_owner_after_using_the_code(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    await chat.say(f"/status {number} {code}")
    assert number in chat.text
    await chat.say("/cases")
    assert chat.text.count(number) >= 1


async def test_a_chat_bound_with_the_code_is_told_of_each_step(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    number, code = await submit(chat)
    other = Chat(app.router, "other-device")
    await other.say(f"/status {number} {code}")
    stranger = Chat(app.router, "stranger-device")
    await stranger.say("/start")
    (new_case,) = await notices_to(app, window)
    await window.press_data(new_case.buttons[0][0]["data"])  # 处理
    await window.press("受理")
    await window.say("材料齐全，同意受理")
    owner_notice = (await notices_to(app, chat))[-1]  # after the printable form
    (viewer_notice,) = await notices_to(app, other)
    assert number in viewer_notice.text and "已受理" in viewer_notice.text
    assert viewer_notice.text == owner_notice.text
    assert viewer_notice.buttons == []  # the owner's buttons act for the owner only
    assert await notices_to(app, stranger) == []
