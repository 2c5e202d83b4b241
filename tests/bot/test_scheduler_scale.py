"""The scheduler's cost follows open work, not history: a frozen clock, a two-year-old
question, and the number of statements a quiet tick issues."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert, select, update

from bot import scheduler
from bot.app import App
from storage import applicants
from storage.models import (
    Announcement,
    Case,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    Question,
    QuestionStatus,
)
from support import Chat, bind_staff, case_values, notices_to

NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # a Monday, 10:00 in Changsha
TWO_YEARS_AGO = dt.datetime(2024, 11, 28, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The scheduler's clock stands still at NOW."""
    monkeypatch.setattr(scheduler, "utcnow", lambda: NOW)
    return NOW


@contextmanager
def counting(app: App) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs."""
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    engine = app.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def add_history(app: App, first: int, count: int) -> None:
    """Finished work: closed cases, closed questions, sent notices, a reported announcement."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", f"old-{first}")
        await session.flush()
        await session.execute(
            insert(Case),
            [
                case_values(
                    f"BDB-2024-{first + n:06d}",
                    applicant.id,
                    status=CaseStatus.CLOSED if n % 2 else CaseStatus.WITHDRAWN,
                    # a withdrawn case from before the clock stopped on withdrawal
                    due_at=None if n % 2 else TWO_YEARS_AGO,
                    follow_up_asked_at=TWO_YEARS_AGO if n % 2 else None,
                    created_at=TWO_YEARS_AGO,
                    updated_at=TWO_YEARS_AGO,
                )
                for n in range(count)
            ],
        )
        await session.execute(
            insert(Question),
            [
                {
                    "applicant_id": applicant.id,
                    "text": "历史咨询",
                    "status": QuestionStatus.CLOSED,
                    "created_at": TWO_YEARS_AGO,
                    "updated_at": TWO_YEARS_AGO,
                }
                for _ in range(count)
            ],
        )
        announcement = Announcement(
            title="旧公告", body="正文", segment="subscribers", reported_at=TWO_YEARS_AGO
        )
        session.add(announcement)
        await session.flush()
        await session.execute(
            insert(OutboxMessage),
            [
                {
                    "idempotency_key": f"announcement:{announcement.id}:applicant:{first + n}",
                    "announcement_id": announcement.id,
                    "channel": "test",
                    "chat_id": f"old-{first + n}",
                    "text": "旧公告",
                    "status": OutboxStatus.SENT,
                }
                for n in range(count)
            ],
        )


async def test_a_two_year_old_open_question_is_escalated_once(
    app: App, frozen: dt.datetime
) -> None:
    li = await bind_staff(app, "李娜", "li")  # window staff on duty: the first responder
    zhou = await bind_staff(app, "周静", "zhou")  # chief of 政务服务中心
    await Chat(app.router, "ent").say("/ask 园区有没有人才公寓可以申请入住")
    async with app.services.db.transaction() as session:
        await session.execute(update(Question).values(created_at=TWO_YEARS_AGO))

    assert await scheduler.tick(app.services) == 1
    (escalation,) = await notices_to(app, zhou)
    assert "首席责任人" in escalation.text and "李娜" in escalation.text
    assert all("⏰" not in m.text for m in await notices_to(app, li))  # no late reminder
    async with app.services.db.sessions() as session:
        question = await session.scalar(select(Question))
    assert question is not None and question.escalation_level == 2
    assert question.status == QuestionStatus.OPEN  # still the owner's to answer

    assert await scheduler.tick(app.services) == 0  # once only
    assert len(await notices_to(app, zhou)) == 1


async def test_a_quiet_tick_issues_the_same_statements_whatever_the_history(
    app: App, frozen: dt.datetime
) -> None:
    await add_history(app, 0, 20)
    await scheduler.tick(app.services)  # settle anything the seed data left due
    with counting(app) as small:
        assert await scheduler.tick(app.services) == 0
    await add_history(app, 20, 400)
    with counting(app) as large:
        assert await scheduler.tick(app.services) == 0
    assert len(large) == len(small), (small, large)
    # One look-up per kind of due work: open questions, case clocks, 回访 asked and closed, 差评
    # verify / fix reminder / fix escalation, finished broadcasts, the problem ladder, key-project
    # follow-ups (unset and due), reminders of bookings, 上门服务 and 联席会议, agency contracts;
    # a job that looks twice per tick fails here.
    assert len([s for s in small if s.lstrip().upper().startswith("SELECT")]) <= 13
    async with app.services.db.sessions() as session:
        closed = await session.scalar(select(Case).where(Case.status == CaseStatus.CLOSED))
    assert closed is not None and closed.status == CaseStatus.CLOSED  # history untouched
