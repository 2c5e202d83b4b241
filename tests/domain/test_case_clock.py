"""The working-day clock is one table keyed by status; every status has its rule."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.app import App
from domain.case_jobs import chase_cases
from domain.cases import CLOCK, STEPS, CaseLimits, CaseVerb, Clock, allowed, set_clock
from storage import applicants, cases
from storage.cases import ApplicationData
from storage.models import Case, CaseStatus
from support import Chat, bind_staff, notices_to

DATA = ApplicationData(
    project_kind="general",
    company="湖南时限测试有限公司",
    credit_code=None,
    project_name="时限测试项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于时限测试的项目简介。",
    item_codes=("construction_permit",),
    other_items=None,
)
NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # a Monday, 10:00 in Changsha


def case_in(status: CaseStatus, due: dt.datetime | None = NOW) -> Case:
    return Case(status=status, due_at=due, paused_seconds=None, reminded_at=NOW)


def test_every_status_has_a_clock_rule() -> None:
    assert set(CLOCK) == set(CaseStatus)


@pytest.mark.parametrize(
    "status",
    [CaseStatus.WITHDRAWN, CaseStatus.CLOSED, CaseStatus.REJECTED, CaseStatus.COMPLETED],
)
def test_final_and_finished_states_clear_the_clock(status: CaseStatus) -> None:
    case = case_in(status)
    set_clock(case, NOW)
    assert case.due_at is None and case.paused_seconds is None


def test_supplement_pauses_and_resume_restores_the_time_left() -> None:
    case = case_in(CaseStatus.NEEDS_SUPPLEMENT, NOW + dt.timedelta(hours=30))
    set_clock(case, NOW)
    assert case.due_at is None and case.paused_seconds == 30 * 3600
    case.status = CaseStatus.IN_PROGRESS
    later = NOW + dt.timedelta(days=7)
    set_clock(case, later)
    assert case.due_at == later + dt.timedelta(hours=30) and case.paused_seconds is None


def test_accepted_starts_a_fresh_limit_of_working_days() -> None:
    case = case_in(CaseStatus.ACCEPTED, None)
    set_clock(case, NOW, CaseLimits(accepted=3))
    assert case.due_at == NOW + dt.timedelta(days=3) and case.reminded_at is None


def test_withdraw_is_allowed_exactly_before_completion() -> None:
    assert {s for s in CaseStatus if allowed(s, CaseVerb.WITHDRAW)} == {
        CaseStatus.SUBMITTED,
        CaseStatus.ACCEPTED,
        CaseStatus.IN_PROGRESS,
        CaseStatus.NEEDS_SUPPLEMENT,
    }
    assert all(CLOCK[step.target] for step in STEPS.values())
    assert CLOCK[CaseStatus.NEEDS_SUPPLEMENT] == Clock.PAUSE


async def test_a_withdrawn_case_is_not_chased(app: App, chat: Chat) -> None:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        case = await cases.create(session, applicant.id, DATA, "w1")
        set_clock(case, case.created_at)
        due = case.due_at
    assert due is not None
    window = await bind_staff(app, "李娜")
    await chat.press_data(f"c:withdraw_yes:{case.number}")
    assert "已撤回" in chat.text
    async with app.services.db.sessions() as session:
        stored = await session.scalar(select(Case).where(Case.number == case.number))
    assert stored is not None and stored.due_at is None
    assert await chase_cases(app.services, due) == 0
    assert all("到期" not in m.text for m in await notices_to(app, window))
