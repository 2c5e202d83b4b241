"""The 查询码: given at submission; `/status BDB-… 查询码` lets another chat follow the case."""

from __future__ import annotations

import asyncio
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


def wrong_code(code: str, shift: int = 1) -> str:
    """Another valid-looking code: each letter moved `shift` places along the alphabet."""
    return "".join(
        CODE_ALPHABET[(CODE_ALPHABET.index(c) + shift) % len(CODE_ALPHABET)] for c in code
    )


async def failures_of(app: App, number: str) -> int:
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
    assert case is not None
    return case.code_failures


async def test_guessing_stops_per_case_whoever_guesses(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    limit = app.services.limits.query_codes.limit
    for n in range(limit):  # each guess from a fresh browser: no per-chat limit is reached
        guesser = Chat(app.router, f"guesser-{n}")
        await guesser.say(f"/status {number} {wrong_code(code, n + 1)}")
        assert "建设单位" not in guesser.text
    assert await failures_of(app, number) == limit
    late = Chat(app.router, "late-device")
    await late.say(f"/status {number} {code}")  # even the right code is refused now
    assert "输错次数过多" in late.text and "建设单位" not in late.text
    assert await failures_of(app, number) == limit  # refused without counting or comparing
    await chat.say(f"/status {number} {code}")  # the owner's own chat is never locked out
    assert number in chat.text and "建设单位" in chat.text
    async with app.services.db.transaction() as session:  # the cool-down has passed
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None and case.code_failed_at is not None
        case.code_failed_at -= app.services.limits.query_codes.window
    await late.say(f"/status {number} {code}")
    assert number in late.text and "建设单位" in late.text
    assert await failures_of(app, number) == 0


async def test_guessing_stops_per_chat_across_cases(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    guesser = Chat(app.router, "guesser")
    limit = app.services.limits.query_codes.limit
    for n in range(limit):  # wrong codes spread over case numbers that do not exist
        await guesser.say(f"/status BDB-2026-{900000 + n} {code}")
        assert "查询码不正确" in guesser.text
    await guesser.say(f"/status {number} {code}")
    assert "输错次数过多" in guesser.text and "建设单位" not in guesser.text
    assert await failures_of(app, number) == 0  # the chat was stopped before the case


async def test_concurrent_guesses_are_counted_one_at_a_time(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    limit = app.services.limits.query_codes.limit
    guessers = [Chat(app.router, f"guesser-{n}") for n in range(2 * limit)]
    await asyncio.gather(
        *(g.say(f"/status {number} {wrong_code(code, n % 20 + 1)}") for n, g in enumerate(guessers))
    )
    assert await failures_of(app, number) == limit
    assert sum("输错次数过多" in g.text for g in guessers) == limit + 1  # the limit-th and after
    assert not any("建设单位" in g.text for g in guessers)


async def test_full_width_code_and_number_are_accepted(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    wide = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-"})
    other = Chat(app.router, "other-device")
    await other.say(f"/status {number.translate(wide)}　{code.lower().translate(wide)}")
    assert number in other.text and "建设单位" in other.text


async def test_a_follower_is_not_offered_the_owners_withdrawal(app: App, chat: Chat) -> None:
    number, code = await submit(chat)
    other = Chat(app.router, "other-device")
    await other.say(f"/status {number} {code}")
    assert number in other.text and "撤回申请" not in [b.label for b in other.buttons]
    await chat.say(f"/status {number}")
    assert "撤回申请" in [b.label for b in chat.buttons]
