"""Every screen and notice fits Telegram's 4,096 characters with the largest data the dialogs
and commands allow: long lists page with 上一页/下一页, long texts come in ordered parts, and
nothing is left out."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from bot.app import App
from chat.events import Reply
from dialogs.fit import LIMIT, size
from storage import applicants, cases, key_projects
from storage.cases import ApplicationData
from storage.models import OutboxMessage, Question, Staff
from support import Chat, bind_staff

LONGEST = ApplicationData(
    project_kind="general",
    company="湘" * 100,
    credit_code="91430100MA4L16JQ9D",
    project_name="江" * 100,
    project_code="2021-430100-47-03-012345",
    contact_name="张" * 40,
    contact_phone="+8613800138000",
    project_summary="新区项目简介" * 166,  # 996 of 1,000
    item_codes=(
        "project_filing",
        "project_approval",
        "site_selection",
        "land_use_permit",
        "planning_permit",
        "construction_permit",
    ),
    other_items="其他事项" * 125,  # 500
)
TYPED = 4000  # the most the router accepts as one typed message


def long_note(tag: str) -> str:
    return (tag + "。" + "请补充提交相关证明材料" * 400)[:TYPED]


def text_of(replies: list[Reply]) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", "".join(r.text for r in replies)))


def assert_fits(replies: list[Reply]) -> None:
    assert replies and all(size(r.text) <= LIMIT for r in replies), [size(r.text) for r in replies]


async def longest_case(app: App, chat_id: str = "u1", key: str = "big") -> str:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat_id)
        return (await cases.create(session, applicant.id, LONGEST, key)).number


async def test_case_screen_and_status_with_the_longest_texts(app: App, chat: Chat) -> None:
    number = await longest_case(app)
    window = await bind_staff(app, "李娜")
    leader = await bind_staff(app, "刘洋")
    opinion, instruction = long_note("经办人意见"), long_note("领导批示")
    await window.press_data(f"w:accept:{number}")
    await window.say(opinion)
    await window.press_data(f"w:askto:{number}:{await staff_id(app, '刘洋')}")
    await leader.press_data(f"w:instruct:{number}")
    await leader.say(instruction)
    await window.press_data(f"w:view:{number}")
    assert_fits(window.replies)
    shown = text_of(window.replies)
    assert opinion in shown and instruction in shown and LONGEST.project_summary in shown
    assert window.replies[-1].buttons  # the actions come with the last part

    await window.press_data(f"w:start:{number}")
    notes = [long_note("补正一"), long_note("补正二")]
    for note in notes:
        await window.press_data(f"w:supp:{number}")
        await window.say(note)
        assert_fits(window.replies)
        await window.press_data(f"w:resume:{number}")
    await chat.say(f"/status {number}")
    assert_fits(chat.replies)
    assert all(note in text_of(chat.replies) for note in notes)

    async with app.services.db.sessions() as session:
        rows = list((await session.scalars(select(OutboxMessage))).all())
    assert rows and all(size(r.text) <= LIMIT for r in rows)
    for note in notes:  # each long notice arrives whole, in parts, in order
        parts = [r for r in rows if r.chat_id == "u1" and "补正" in r.text]
        assert note in html.unescape("".join(r.text for r in parts))


async def staff_id(app: App, name: str) -> int:
    async with app.services.db.sessions() as session:
        found = await session.scalar(select(Staff.id).where(Staff.name == name))
    assert found is not None
    return found


async def walk_pages(chat: Chat, pattern: str) -> set[str]:
    """Press 下一页 until the last page; every page fits; returns what matched `pattern`."""
    seen: set[str] = set()
    while True:
        assert_fits(chat.replies)
        seen |= set(re.findall(pattern, chat.text))
        if not any(b.label == "下一页" for b in chat.buttons):
            return seen
        await chat.press("下一页")


async def test_long_lists_page_through_every_entry(app: App, chat: Chat) -> None:
    numbers = {await longest_case(app, "u1", f"k{i}") for i in range(23)}
    window = await bind_staff(app, "李娜")
    await window.say("/inbox")
    assert await walk_pages(window, r"BDB-\d{4}-\d{6}") == numbers
    await window.press("上一页")
    assert "第 2/3 页" in window.text

    await chat.say("/cases")
    assert await walk_pages(chat, r"BDB-\d{4}-\d{6}") == numbers

    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        session.add_all(Question(applicant_id=applicant.id, text="问题" * 2000) for _ in range(120))
    admin = await bind_staff(app, "陈晨")
    await admin.say("/open")
    assert len(await walk_pages(admin, r"#(\d+) ·")) == 120


async def test_key_project_with_twenty_long_milestones(app: App) -> None:
    async with app.services.db.transaction() as session:
        project = await key_projects.create(
            session, "重" * 100, "企" * 100, key_projects.Stage.NEGOTIATING
        )
        for i in range(20):
            await key_projects.add_milestone(session, project, f"{i:02d}" + "节" * 198, None)
    zhou = await bind_staff(app, "周静")  # on every key project's team
    await zhou.press_data(f"k:view:{project.id}")
    assert_fits(zhou.replies)
    shown = text_of(zhou.replies)
    assert all(f"{i:02d}" + "节" * 198 in shown for i in range(20))
