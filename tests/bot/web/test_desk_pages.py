"""/desk at scale: a page costs the same statements however many rows are behind it (the
ladder's rule is SQL, not a team look-up per problem), and each kind pages by keyset with
every row once."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import event, insert, select
from test_staff_http import ROW, desk_page, new_client, shown, sign_in

from bot.app import App
from storage import applicants, key_projects
from storage.key_projects import Stage
from storage.models import Case, CaseItem, Department, Problem, Question, Staff, utcnow
from support import case_values
from webserver import Served, serving

PAGE = 5


@pytest.fixture
async def served(app: App) -> AsyncIterator[Served]:
    async with serving(app, desk_page_size=PAGE) as result:
        yield result


async def grow(app: App, first: int, count: int) -> None:
    """`count` more of each: key projects (the lead-unit chiefs and 许芳 on the team) with a
    problem at every level of the ladder; active cases with an item of 许芳's unit (due one
    hour apart, every third without a clock); questions 李娜 owns, forwarded to 许芳."""
    now = utcnow()
    async with app.services.db.transaction() as session:
        people = dict((await session.execute(select(Staff.name, Staff.id))).tuples().all())
        unit = await session.scalar(
            select(Department.id).where(Department.code == "housing_environment")
        )
        applicant = await applicants.get_or_create(session, "test", f"grow{first}")
        await session.flush()
        for n in range(first, first + count):
            project = await key_projects.create(
                session, f"项目{n}", f"企业{n}", Stage.SIGNED, extra_members=[people["许芳"]]
            )
            for level in range(1, 5):
                problem = await key_projects.raise_problem(
                    session, project, f"问题{n}-{level}", people["周静"], now
                )
                problem.level = level
        numbers = [f"BDB-2026-{n:06d}" for n in range(first, first + count)]
        await session.execute(
            insert(Case),
            [
                case_values(
                    number,
                    applicant.id,
                    due_at=None if n % 3 == 0 else now + dt.timedelta(hours=n % 7),
                )
                for n, number in enumerate(numbers, start=first)
            ],
        )
        ids = (await session.execute(select(Case.id).where(Case.number.in_(numbers)))).scalars()
        await session.execute(
            insert(CaseItem),
            [{"case_id": case_id, "name": "施工许可", "department_id": unit} for case_id in ids],
        )
        await session.execute(
            insert(Question),
            [
                {
                    "applicant_id": applicant.id,
                    "text": f"咨询{n}",
                    "status": "forwarded",
                    "owner_id": people["李娜"],
                    "assignee_id": people["许芳"],
                }
                for n in range(first, first + count)
            ],
        )


async def statements_of_desk(served: Served, client: aiohttp.ClientSession) -> tuple[int, str]:
    count = 0

    def seen(*_: object) -> None:
        nonlocal count
        count += 1

    engine = served.app.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = await desk_page(client, served)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return count, page


async def test_a_desk_page_costs_the_same_statements_for_5_or_50_of_each(served: Served) -> None:
    people = ("许芳", "周静", "钱峰", "陈晨", "刘洋")
    clients = {name: new_client() for name in people}
    try:
        for name, client in clients.items():
            await sign_in(served, client, name)
        costs: dict[str, list[int]] = {name: [] for name in people}
        for first, count in ((0, 5), (100, 45)):
            await grow(served.app, first, count)
            for name, client in clients.items():
                statements, page = await statements_of_desk(served, client)
                costs[name].append(statements)
                assert shown(page), name
        for name, (few, many) in costs.items():
            assert few == many, (name, few, many)
        # 许芳 sees her unit's cases, her questions and the level-1 problems of her teams
        _, page = await statements_of_desk(served, clients["许芳"])
        assert "申请 50 项" in page and "咨询 50 项" in page and "问题 50 项" in page
    finally:
        for client in clients.values():
            await client.close()


async def rows_of_kind(client: aiohttp.ClientSession, served: Served, kind: str) -> list[str]:
    """Every row of one kind, following 下一页 from the first page to the last."""
    query, refs, pages = f"?kind={kind}", [], 0
    while True:
        page = await desk_page(client, served, query)
        shown_here = [ref for found_kind, ref in ROW.findall(page) if found_kind == kind]
        assert len(shown_here) <= PAGE
        refs += shown_here
        pages += 1
        onward = re.search(r'href="desk\?([^"]+)" rel="next"', page)
        if onward is None:
            break
        assert "回到第一页" in page or pages == 1
        query = "?" + html.unescape(onward.group(1))
    assert pages == -(-len(refs) // PAGE)
    return refs


async def test_each_kind_pages_by_keyset_with_every_row_once(served: Served) -> None:
    await grow(served.app, 0, 12)
    async with served.app.services.db.sessions() as session:
        due_order = (
            await session.execute(
                select(Case.number).order_by(Case.due_at.is_(None), Case.due_at, Case.id)
            )
        ).scalars()
        cases = list(due_order)
        problems = {p.id for p in await session.scalars(select(Problem).where(Problem.level == 1))}
        questions = list(await session.scalars(select(Question.id).order_by(Question.id)))
    async with new_client() as client:
        await sign_in(served, client, "许芳")
        first = await desk_page(client, served)
        assert len(ROW.findall(first)) == 3 * PAGE  # a page of each kind
        assert first.count('rel="next"') == 3
        assert await rows_of_kind(client, served, "case") == cases  # earliest due first
        assert sorted(int(r[1:]) for r in await rows_of_kind(client, served, "problem")) == sorted(
            problems
        )
        assert [int(r[1:]) for r in await rows_of_kind(client, served, "question")] == questions
        for odd in ("?kind=case&after=x'--", "?kind=case&after=99999999999999999999"):
            assert shown(await desk_page(client, served, odd)) == shown(
                await desk_page(client, served, "?kind=case")
            )  # a malformed anchor is the first page
        gone = await desk_page(client, served, "?kind=case&after=999999")
        assert not shown(gone) and "回到第一页" in gone  # a vanished anchor: no rows, a way back
        level_two = await desk_page(client, served, "?kind=problem&status=level_2")
        assert "暂无待办事项" in level_two  # a specialist handles level 1 only
    async with new_client() as chief:
        await sign_in(served, chief, "钱峰")  # chief of a unit not on any team: no problem is his
        assert "暂无待办事项" in await desk_page(chief, served, "?kind=problem")
        await sign_in(served, chief, "何军")  # chief of 许芳's unit, on every team through her
        refs = await rows_of_kind(chief, served, "problem")
        async with served.app.services.db.sessions() as session:
            level_two = set(await session.scalars(select(Problem.id).where(Problem.level == 2)))
        assert sorted(int(r[1:]) for r in refs) == sorted(level_two)
