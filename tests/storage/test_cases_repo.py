"""Case repository on both databases: numbering, ownership, life cycle."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import App
from domain import cases as life
from domain.cases import CaseVerb, NotNow
from domain.policy import Actor
from storage import applicants, cases, roster
from storage.cases import ApplicationData
from storage.models import CaseStatus

DATA = ApplicationData(
    project_kind="general",
    company="湖南某某科技有限公司",
    credit_code=None,
    project_name="某某项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于测试的项目简介。",
    item_codes=("construction_permit", "planning_permit"),
    other_items=None,
)


async def new_case(app: App, key: str, chat_id: str = "u1") -> cases.Case:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat_id)
        return await cases.create(session, applicant.id, DATA, key)


async def test_numbers_are_sequential_and_unique_under_concurrency(app: App) -> None:
    created = await asyncio.gather(*(new_case(app, f"k{i}", f"u{i}") for i in range(12)))
    numbers = sorted(c.number for c in created)
    year = numbers[0].split("-")[1]
    assert numbers == [f"BDB-{year}-{i:06d}" for i in range(1, 13)]


async def test_items_take_their_responsible_unit(app: App) -> None:
    case = await new_case(app, "k1")
    async with app.services.db.sessions() as session:
        applicant = await applicants.find(session, "test", "u1")
        assert applicant is not None
        loaded = await cases.for_applicant(session, applicant.id, case.number)
        assert loaded is not None
        units = {item.name: item.department_id for item in loaded.items}
        departments = {d.id: d.code for d in await roster.departments(session)}
    assert departments[units["建筑工程施工许可证"]] == "housing_environment"
    assert departments[units["建设工程规划许可证"]] == "land_planning"


async def test_another_applicant_cannot_load_the_case(app: App) -> None:
    case = await new_case(app, "k1", "owner")
    async with app.services.db.transaction() as session:
        other = await applicants.get_or_create(session, "test", "stranger")
        assert await cases.for_applicant(session, other.id, case.number) is None


async def test_transitions_follow_the_life_cycle(app: App) -> None:
    case = await new_case(app, "k1")
    async with app.services.db.transaction(immediate=True) as session:
        applicant = await applicants.find(session, "test", "u1")
        window = await roster.staff_by_name(session, "李娜")
        assert applicant is not None and window is not None
        actor = Actor.of_staff(window)
        with pytest.raises(NotNow):
            await life.move(session, case.number, CaseVerb.COMPLETE, actor)
        await life.move(session, case.number, CaseVerb.ACCEPT, actor)
        await life.move(session, case.number, CaseVerb.START, actor)
    async with app.services.db.sessions() as session:
        reloaded = await cases.for_applicant(session, applicant.id, case.number)
        assert reloaded is not None
        assert reloaded.status == CaseStatus.IN_PROGRESS
        assert [e.to_status for e in reloaded.events] == ["submitted", "accepted", "in_progress"]
        assert reloaded.events[1].at.tzinfo is not None
