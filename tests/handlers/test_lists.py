"""Long chat lists page by keyset: every row once, in order, forward and back, and a page
costs the same statements however many rows it shows."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import event, insert, select

from bot.app import App
from storage import applicants
from storage.models import Case, CaseStatus, CaseViewer, Question, QuestionStatus, Staff
from support import Chat, bind_staff, case_values

START = dt.datetime(2026, 9, 1, 2, 0, tzinfo=dt.UTC)
NUMBER = re.compile(r"BDB-\d{4}-\d{6}")


async def add_cases(
    app: App, chat_id: str, statuses: list[CaseStatus], first: int = 0
) -> list[str]:
    """Cases of this chat's applicant, every third pair created in the same second (ties)."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat_id)
        await session.flush()
        rows = []
        for n, status in enumerate(statuses, start=first):
            moment = START + dt.timedelta(hours=n - n % 3 // 2)
            rows.append(
                case_values(
                    f"BDB-2026-{n:06d}",
                    applicant.id,
                    status=status,
                    created_at=moment,
                    updated_at=moment,
                )
            )
        await session.execute(insert(Case), rows)
    return [str(row["number"]) for row in rows]


def listed(chat: Chat) -> list[str]:
    return [
        m
        for b in chat.buttons
        for m in NUMBER.findall(b.data)
        if ":open:" in b.data or ":view:" in b.data
    ]


async def walk(chat: Chat, first: str) -> list[list[str]]:
    """The pages from the first, pressing 下一页 while there is one."""
    await chat.say(first)
    pages = [listed(chat)]
    while any(b.label == "下一页" for b in chat.buttons):
        await chat.press("下一页")
        pages.append(listed(chat))
    return pages


async def test_cases_page_newest_first_with_bound_cases_and_back(app: App) -> None:
    mine = await add_cases(app, "u1", [CaseStatus.SUBMITTED] * 23)
    theirs = await add_cases(app, "other", [CaseStatus.CLOSED] * 2, first=100)
    async with app.services.db.transaction() as session:
        me = await applicants.get_or_create(session, "test", "u1")
        for number in theirs:  # bound with the 查询码
            case = await session.scalar(select(Case).where(Case.number == number))
            assert case is not None
            session.add(CaseViewer(case_id=case.id, applicant_id=me.id))
    async with app.services.db.sessions() as session:
        found = await session.execute(
            select(Case.number).order_by(Case.created_at.desc(), Case.id.desc())
        )
        expected = [n for (n,) in found.tuples() if n in set(mine) | set(theirs)]
    chat = Chat(app.router)
    pages = await walk(chat, "/cases")
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [n for page in pages for n in page] == expected
    assert "共 25 件" in chat.text and "第 3/3 页" in chat.text
    await chat.press("上一页")
    assert listed(chat) == pages[1] and "第 2/3 页" in chat.text
    await chat.press("上一页")
    assert listed(chat) == pages[0] and "第 1/3 页" in chat.text
    assert not any(b.label == "上一页" for b in chat.buttons)


async def test_an_old_page_button_shows_the_first_page(app: App) -> None:
    await add_cases(app, "u1", [CaseStatus.SUBMITTED] * 12)
    chat = Chat(app.router)
    await chat.say("/cases")
    first = listed(chat)
    await chat.press_data("c:page:1")  # a page number from before keyset pages
    assert listed(chat) == first
    await chat.press_data("c:page:1n999999")  # the anchor row is gone
    assert listed(chat) == first


async def test_inbox_pages_the_active_cases_oldest_change_first(app: App) -> None:
    statuses = [CaseStatus.SUBMITTED, CaseStatus.IN_PROGRESS, CaseStatus.CLOSED] * 8
    numbers = await add_cases(app, "u1", statuses)
    active = [n for n, s in zip(numbers, statuses, strict=True) if s != CaseStatus.CLOSED]
    window = await bind_staff(app, "李娜")
    pages = await walk(window, "/inbox")
    assert [len(p) for p in pages] == [10, 6]
    assert sorted(n for page in pages for n in page) == sorted(active)
    assert [n for page in pages for n in page] == sorted(active)  # created in number order
    await window.press("上一页")
    assert listed(window) == pages[0]


async def test_open_questions_page_with_owner_names_in_a_fixed_number_of_statements(
    app: App,
) -> None:
    admin = await bind_staff(app, "陈晨")
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "ent")
        people = list((await session.scalars(select(Staff).order_by(Staff.id))).unique())
        await session.flush()
        await session.execute(
            insert(Question),
            [
                {
                    "applicant_id": applicant.id,
                    "text": f"咨询{n}",
                    "status": QuestionStatus.ANSWERED if n % 4 == 3 else QuestionStatus.OPEN,
                    "owner_id": people[n % len(people)].id,
                }
                for n in range(17)
            ],
        )
    statements: list[str] = []
    engine = app.services.db.engine.sync_engine

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        await admin.say("/open")
        first_page = len(statements)
        assert "共 13 件" in admin.text and admin.text.count("#") == 10
        assert people[1].name in admin.text  # the owner's name, read in the same query
        statements.clear()
        await admin.press("下一页")
        assert admin.text.count("#") == 3 and "第 2/2 页" in admin.text
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == first_page  # 3 rows or 10: the same statements
    assert not any(b.label == "下一页" for b in admin.buttons)
