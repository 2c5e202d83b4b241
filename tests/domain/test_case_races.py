"""Two people acting on one case at the same moment: exactly one step happens, the other
is told 该申请状态已变化, and the applicant hears of it once.

Each trial goes through the real router for both people at once (asyncio.gather: two
conversations, two database connections). On PostgreSQL the case row lock decides; on SQLite
BEGIN IMMEDIATE does. PostgreSQL runs 100 trials per race, SQLite 10.
"""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import select, update

from bot.app import App
from storage import applicants, cases
from storage.cases import ApplicationData
from storage.models import Case, CaseEvent, CaseItem, OutboxMessage
from support import Chat, bind_staff

STALE = "该申请状态已变化"
DATA = ApplicationData(
    project_kind="general",
    company="湖南并发测试科技有限公司",
    credit_code=None,
    project_name="并发测试项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于并发测试的项目简介。",
    item_codes=("construction_permit",),
    other_items=None,
)


def trials(backend: str) -> int:
    return 100 if backend == "production" else 10


async def new_cases(app: App, count: int, status: str = "submitted") -> list[str]:
    """`count` cases of applicant test:u1, straight into the database (fast set-up)."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        numbers = [
            (await cases.create(session, applicant.id, DATA, f"race-{i}")).number
            for i in range(count)
        ]
        if status != "submitted":
            await session.execute(update(Case).values(status=status))
    return numbers


async def events_of(app: App, number: str) -> list[CaseEvent]:
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        query = select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        return list((await session.scalars(query)).all())


async def applicant_notices(app: App, number: str, kind: str = "event") -> int:
    async with app.services.db.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.chat_id == "u1",
                OutboxMessage.idempotency_key.like(f"case:{number}:{kind}:%"),
            )
        )
        return len(rows.all())


def assert_chained(events: list[CaseEvent]) -> None:
    """Every event starts where the one before it ended: no step saw a stale state."""
    for before, after in itertools.pairwise(events):
        assert after.from_status == before.to_status


async def test_accept_and_reject_at_once_one_wins(app: App, backend: str) -> None:
    li, wang = await bind_staff(app, "李娜"), await bind_staff(app, "王磊")
    for number in await new_cases(app, trials(backend)):
        await li.press_data(f"w:accept:{number}")
        await wang.press_data(f"w:reject:{number}")
        await asyncio.gather(li.say("同意受理"), wang.say("不在新区范围内"))
        stale = [STALE in chat.text for chat in (li, wang)]
        assert sorted(stale) == [False, True], (li.text, wang.text)
        events = await events_of(app, number)
        winner = "rejected" if stale[0] else "accepted"
        assert [e.to_status for e in events] == ["submitted", winner]
        assert_chained(events)
        assert await applicant_notices(app, number) == 1


async def test_two_item_updates_at_once_one_wins(app: App, backend: str) -> None:
    xu, he = await bind_staff(app, "许芳"), await bind_staff(app, "何军")  # both 住建环保局
    numbers = await new_cases(app, trials(backend), status="in_progress")
    async with app.services.db.sessions() as session:
        items = {
            number: item_id
            for number, item_id in (
                await session.execute(
                    select(Case.number, CaseItem.id).join(CaseItem, CaseItem.case_id == Case.id)
                )
            ).tuples()
        }
    for number in numbers:
        press = f"w:item:{number}:{items[number]}:declared"
        await asyncio.gather(xu.press_data(press), he.press_data(press))
        stale = [STALE in chat.text for chat in (xu, he)]
        assert sorted(stale) == [False, True], (xu.text, he.text)
        assert await applicant_notices(app, number, "item") == 1
    async with app.services.db.sessions() as session:
        statuses = set((await session.scalars(select(CaseItem.status))).all())
    assert statuses == {"declared"}


async def test_withdraw_and_accept_at_once_stay_in_order(app: App, backend: str) -> None:
    applicant = Chat(app.router, "u1")
    window = await bind_staff(app, "李娜")
    accepted_first = 0
    for number in await new_cases(app, trials(backend)):
        await window.press_data(f"w:accept:{number}")
        await asyncio.gather(
            window.say("同意受理"), applicant.press_data(f"c:withdraw_yes:{number}")
        )
        assert "已撤回" in applicant.text
        events = await events_of(app, number)
        steps = [e.to_status for e in events]
        assert_chained(events)
        if steps == ["submitted", "accepted", "withdrawn"]:
            accepted_first += 1
            assert STALE not in window.text
            assert await applicant_notices(app, number) == 1  # 已受理
        else:
            assert steps == ["submitted", "withdrawn"]
            assert STALE in window.text
            assert await applicant_notices(app, number) == 0
    async with app.services.db.sessions() as session:
        left = (await session.scalars(select(Case.status).distinct())).all()
        clocks = (await session.scalars(select(Case.due_at).distinct())).all()
    assert list(left) == ["withdrawn"] and list(clocks) == [None]  # nobody is chased
    assert 0 <= accepted_first <= trials(backend)
