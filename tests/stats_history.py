"""A seeded history for the 服务统计 tests around National Day 2025 (1–8 October off,
Sunday 28 September and Saturday 11 October worked), every figure worked out by hand.

The range is 29 September – 12 October 2025 (China time). Cases, all at 10:00 unless said:

  C1 web      施工许可 (住建环保局)   提交 30.9, 受理 9.10 (1 wd), 办结 10.10 (2 wd), 送达 10.10,
              rated 非常满意
  C2 wechat   规划许可 (国土规划局)   提交 29.9, 受理 10.10 (3 wd, its 1-day clock ran out on
              30.9: late), 办结 11.10 (4 wd), 送达 11.10, rated 不满意 → a 差评, 核实 on time
  C3 QR code  财政评审 (财政局)       提交 9.10, 不予受理 9.10
  C4 web      施工许可 + 规划许可      提交 20.9 (outside), 受理 22.9, 办结 9.10 (9 wd), 送达 13.10
  C5 wechat   产业政策 (产业促进局)   提交 12.10, nothing since

Working days from 20.9 to 9.10: 22–26.9 (5), 28.9, 29.9, 30.9, 9.10 → 9.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from bot.app import App
from domain import bad_ratings, stats
from domain import cases as life
from domain.bad_ratings import BadRatingLimits
from domain.cases import CaseVerb
from domain.policy import Actor
from domain.reminders import keep_answer_figures
from services.workdays import CHINA
from storage import applicants, cases
from storage import stats as queries
from storage.cases import Application
from storage.models import (
    CaseItem,
    ConsultationRecord,
    Department,
    KeyProject,
    Problem,
    Question,
    RatingLevel,
    Staff,
)

RANGE = stats.day_span(dt.date(2025, 9, 29), dt.date(2025, 10, 12))


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, tzinfo=CHINA).astimezone(dt.UTC)


async def _staff(app: App, name: str) -> Staff:
    async with app.services.db.sessions() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == name))
    assert staff is not None
    return staff


async def _unit(app: App, code: str) -> int:
    async with app.services.db.sessions() as session:
        unit = await session.scalar(select(Department.id).where(Department.code == code))
    assert unit is not None
    return unit


async def _applicant(app: App, channel: str, chat_id: str, source: str | None = None) -> int:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, channel, chat_id)
        applicant.source = source
        await session.flush()
        return applicant.id


async def _case(app: App, applicant_id: int, items: tuple[str, ...], created: dt.datetime) -> str:
    async with app.services.db.transaction() as session:
        data = Application(
            company="湖南统计测试有限公司",
            project_name="统计测试项目",
            contact_name="王五",
            contact_phone="+8613900002222",
            project_summary="统计测试。",
            item_codes=items,
        )
        key = f"stats-{created:%m%d}-{items[0]}"
        case = await cases.create(session, applicant_id, data, key, now=created)
        life.set_clock(case, created)
        return case.number


async def _move(app: App, number: str, verb: CaseVerb, actor: Actor, when: dt.datetime) -> None:
    async with app.services.db.transaction(immediate=True) as session:
        if verb == CaseVerb.COMPLETE:
            found = await cases.by_number(session, number)
            assert found is not None
            await session.execute(
                update(CaseItem).where(CaseItem.case_id == found.id).values(status="done")
            )
        await life.move(session, number, verb, actor, "备注", now=when)


async def _walk(
    app: App, number: str, actor: Actor, steps: list[tuple[CaseVerb, dt.datetime]]
) -> None:
    for verb, when in steps:
        await _move(app, number, verb, actor, when)


async def _rate(
    app: App, number: str, applicant_id: int, level: RatingLevel, when: dt.datetime
) -> None:
    async with app.services.db.transaction(immediate=True) as session:
        actor = Actor.of_applicant(applicant_id)
        await life.rate(session, number, actor, level, "web", BadRatingLimits(), now=when)


async def seed_history(app: App) -> None:
    window = Actor.of_staff(await _staff(app, "李娜"))
    web = await _applicant(app, "web", "stats-web")
    wechat = await _applicant(app, "wechat", "stats-wechat")
    qr = await _applicant(app, "telegram", "stats-qr", source="park")
    accept, start, complete, pickup = (
        CaseVerb.ACCEPT,
        CaseVerb.START,
        CaseVerb.COMPLETE,
        CaseVerb.PICKUP,
    )

    c1 = await _case(app, web, ("construction_permit",), at(9, 30))
    await _walk(app, c1, window, [(accept, at(10, 9)), (start, at(10, 9, 11)),
                                  (complete, at(10, 10)), (pickup, at(10, 10, 11))])  # fmt: skip
    await _rate(app, c1, web, RatingLevel.VERY_SATISFIED, at(10, 10, 12))

    c2 = await _case(app, wechat, ("planning_permit",), at(9, 29))
    await _walk(app, c2, window, [(accept, at(10, 10)), (start, at(10, 10, 11)),
                                  (complete, at(10, 11)), (pickup, at(10, 11, 11))])  # fmt: skip
    await _rate(app, c2, wechat, RatingLevel.DISSATISFIED, at(10, 11, 12))
    owner = Actor.of_staff(await _staff(app, "曹琳"))  # 国土规划局's specialist
    async with app.services.db.transaction(immediate=True) as session:
        item_id = (await queries.bad_rating_figures(session, RANGE)).opened
        await bad_ratings.step(
            session, item_id, bad_ratings.Step.VERIFY, owner, "已核实", at(10, 11, 15)
        )

    c3 = await _case(app, qr, ("fiscal_review",), at(10, 9))
    await _move(app, c3, CaseVerb.REJECT, window, at(10, 9, 15))

    c4 = await _case(app, web, ("construction_permit", "planning_permit"), at(9, 20))
    await _walk(app, c4, window, [(accept, at(9, 22)), (start, at(9, 22, 11)),
                                  (complete, at(10, 9)), (pickup, at(10, 13))])  # fmt: skip

    await _case(app, wechat, ("industry_policy",), at(10, 12))

    land = await _unit(app, "land_planning")
    async with app.services.db.transaction() as session:
        asked = [  # (created, answered, unit): 215 h but on time across the holiday; 2 h; 49 h late
            (at(9, 30), at(10, 9, 9), land),
            (at(10, 10), at(10, 10, 12), None),
            (at(10, 9), at(10, 11, 11), None),
            (at(10, 9), None, None),  # not answered yet: not counted
        ]
        for created, answered, unit in asked:
            question = Question(
                applicant_id=web, text="问题", created_at=created, department_id=unit
            )
            if answered is not None:
                keep_answer_figures(question, answered)
                question.answered_at = answered
            session.add(question)
        for outcome, channel, when in [
            ("answer", "web", at(9, 29)),
            ("answer", "web", at(10, 12, 23)),
            ("answer", "wechat", at(10, 1)),
            ("choose", "web", at(10, 5)),
            ("route", "web", at(10, 9)),
            ("route", "telegram", at(10, 10)),
            ("answer", "web", at(10, 13)),  # the day after the range
        ]:
            session.add(ConsultationRecord(outcome=outcome, channel=channel, at=when))
        project = KeyProject(name="重点项目", company="湖南重点有限公司")
        session.add(project)
        await session.flush()
        for level, status, resolved in [
            (1, "open", None),
            (3, "open", None),
            (2, "resolved", at(10, 10)),
            (1, "resolved", at(9, 1)),
        ]:
            session.add(
                Problem(key_project_id=project.id, text="问题", level=level, status=status,
                        resolved_at=resolved)
            )  # fmt: skip
