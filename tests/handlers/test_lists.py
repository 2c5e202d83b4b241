"""Long chat lists page by keyset: every row once, in order, forward and back, and a page
costs the same statements however many rows it shows."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import event, insert, select

from bot.app import App
from storage import applicants, key_projects
from storage.key_projects import Stage
from storage.models import (
    Case,
    CaseItem,
    CaseStatus,
    CaseViewer,
    Department,
    Question,
    QuestionStatus,
    Staff,
)
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


class Statements:
    """Counts the SQL statements the app's engine runs while active."""

    def __init__(self, app: App) -> None:
        self.engine = app.services.db.engine.sync_engine
        self.count = 0

    def _seen(self, *_: object) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


async def add_projects(app: App, count: int, team: list[str]) -> list[int]:
    """Key projects with the default team (the lead units' chiefs) and `team` added."""
    async with app.services.db.transaction() as session:
        people = await session.scalars(select(Staff.id).where(Staff.name.in_(team)))
        extra = list(people)
        ids = []
        for n in range(count):
            project = await key_projects.create(
                session, f"重点项目{n}", f"湖南重点{n}有限公司", Stage.SIGNED, extra_members=extra
            )
            ids.append(project.id)
    return ids


def projects_listed(chat: Chat) -> list[int]:
    return [int(b.data.rsplit(":", 1)[1]) for b in chat.buttons if b.data.startswith("k:view:")]


async def test_kp_pages_a_chiefs_projects_and_back(app: App) -> None:
    mine = await add_projects(app, 23, [])
    others = await add_projects(app, 2, ["吴婷"])  # the lead-unit chief is on these too
    chief = await bind_staff(app, "周静")
    await chief.say("/kp")
    pages = [projects_listed(chief)]
    while any(b.label == "下一页" for b in chief.buttons):
        await chief.press("下一页")
        pages.append(projects_listed(chief))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [n for page in pages for n in page] == sorted(mine + others)
    assert "共 25 个" in chief.text and "第 3/3 页" in chief.text
    await chief.press("上一页")
    assert projects_listed(chief) == pages[1] and "第 2/3 页" in chief.text
    await chief.press("上一页")
    assert projects_listed(chief) == pages[0]
    assert not any(b.label == "上一页" for b in chief.buttons)


async def test_kp_shows_only_the_specialists_own_projects(app: App) -> None:
    theirs = await add_projects(app, 12, ["吴婷"])
    await add_projects(app, 3, [])
    wu = await bind_staff(app, "吴婷")
    await wu.say("/kp")
    first = projects_listed(wu)
    await wu.press("下一页")
    assert first + projects_listed(wu) == theirs
    assert "共 12 个" in wu.text


async def test_kp_and_inbox_pages_cost_the_same_statements_for_5_or_50_rows(app: App) -> None:
    """The first page of /kp and of a specialist's /inbox: the same statements with 5 rows
    behind them as with 50 (no look-up per row, aggregates in SQL)."""
    chief = await bind_staff(app, "周静")
    xu = await bind_staff(app, "许芳")
    costs = []
    for total in (5, 50):
        await add_projects(app, total - len(costs) * 5, ["许芳"])
        await add_unit_cases(app, total - len(costs) * 5, first=len(costs) * 100)
        with Statements(app) as kp:
            await chief.say("/kp")
        assert f"共 {total} 个" in chief.text
        with Statements(app) as inbox:
            await xu.say("/inbox")
        assert f"共 {total} 件" in xu.text
        costs.append((kp.count, inbox.count))
    assert costs[0] == costs[1]


async def add_unit_cases(app: App, count: int, first: int = 0) -> list[str]:
    """Active cases with an item of 住建环保局 (许芳's unit), each with a second item of
    another unit; returns their numbers."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", f"unit{first}")
        units = dict((await session.execute(select(Department.code, Department.id))).tuples().all())
        await session.flush()
        numbers = [f"BDB-2026-{n:06d}" for n in range(first, first + count)]
        await session.execute(
            insert(Case),
            [
                case_values(
                    number,
                    applicant.id,
                    created_at=START + dt.timedelta(hours=n),
                    updated_at=START + dt.timedelta(hours=n),
                )
                for n, number in enumerate(numbers, start=first)
            ],
        )
        ids = dict(
            (await session.execute(select(Case.number, Case.id).where(Case.number.in_(numbers))))
            .tuples()
            .all()
        )
        await session.execute(
            insert(CaseItem),
            [
                {"case_id": ids[number], "name": "事项", "department_id": units[unit]}
                for number in numbers
                for unit in ("housing_environment", "finance")
            ],
        )
    return numbers


async def test_a_specialists_inbox_pages_the_units_and_the_teams_cases(app: App) -> None:
    """许芳 sees the active cases with an item of her unit and those of her key projects,
    every one once across the pages, and no other."""
    ours = await add_unit_cases(app, 14)
    others = await add_cases(app, "other", [CaseStatus.SUBMITTED] * 4, first=500)
    closed = await add_cases(app, "old", [CaseStatus.CLOSED] * 2, first=600)
    async with app.services.db.transaction() as session:
        team_case = await session.scalar(select(Case).where(Case.number == others[0]))
        assert team_case is not None
        xu = await session.scalar(select(Staff).where(Staff.name == "许芳"))
        assert xu is not None
        await key_projects.create(
            session, "重点", "湖南重点有限公司", Stage.SIGNED, None, team_case.id, [xu.id]
        )
    chat = await bind_staff(app, "许芳")
    pages = await walk(chat, "/inbox")
    assert [len(p) for p in pages] == [10, 5]
    assert sorted(n for page in pages for n in page) == sorted([*ours, others[0]])
    assert not set(closed) & {n for page in pages for n in page}
    await chat.press("上一页")
    assert listed(chat) == pages[0]
