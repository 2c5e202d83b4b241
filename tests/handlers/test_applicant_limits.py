"""Per-applicant limits against floods, counted in the database: open questions and
applications per day; the applicant is told why and loses nothing typed."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select, update

from bot.app import App
from handlers import applicant as applicant_handlers
from storage import applicants, cases
from storage.cases import ApplicationData
from storage.models import Case, Question
from support import Chat, fill_application

DATA = ApplicationData(
    project_kind="general",
    company="湖南限额测试有限公司",
    credit_code=None,
    project_name="限额测试项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于限额测试的项目简介。",
    item_codes=("construction_permit",),
    other_items=None,
)
STREET_LIGHT = "我们厂区门口的路灯坏了好几天，能不能帮忙反映一下"


async def earlier_cases(app: App, count: int, tag: str) -> None:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        for i in range(count):
            await cases.create(session, applicant.id, DATA, f"earlier-{tag}{i}")


async def case_count(app: App) -> int:
    async with app.services.db.sessions() as session:
        return int(await session.scalar(select(func.count(Case.id))) or 0)


async def test_fourth_application_of_the_day_waits_with_the_draft_kept(
    app: App, chat: Chat
) -> None:
    assert app.services.limits.daily_applications == 3
    await earlier_cases(app, 2, "a")
    await fill_application(chat)
    await earlier_cases(app, 1, "b")  # the third arrives while this one is being filled in
    await chat.press("提交")
    assert "每日提交上限" in chat.text and "已保留" in chat.text
    assert await case_count(app) == 3
    await chat.say("/apply")
    assert "继续填写" in chat.text  # the draft is still there

    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(created_at=yesterday))
    await chat.say("/apply")
    await chat.press("继续填写")
    await chat.press("提交")
    assert re.search(r"BDB-\d{4}-\d{6}", chat.text) and await case_count(app) == 4


async def test_a_fresh_apply_after_three_today_is_refused_at_once(app: App, chat: Chat) -> None:
    await earlier_cases(app, 3, "a")
    await chat.say("/apply")
    assert "每日提交上限" in chat.text and "已保留" not in chat.text
    assert not any(b.data.startswith("f:") for b in chat.buttons)  # no dialog was started


async def test_sixth_open_question_is_held_back_politely(app: App, chat: Chat) -> None:
    assert app.services.limits.open_questions == 5
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        session.add_all(Question(applicant_id=applicant.id, text=f"问题{i}") for i in range(5))
    await chat.say(STREET_LIGHT)
    assert "正在等待答复" in chat.text
    async with app.services.db.transaction() as session:
        assert await session.scalar(select(func.count(Question.id))) == 5
        await session.execute(update(Question).values(status="closed"))
    await chat.press("转人工")  # the question was kept
    async with app.services.db.sessions() as session:
        texts = (await session.scalars(select(Question.text).order_by(Question.id))).all()
    assert texts[-1] == STREET_LIGHT


async def _three_cases_at(app: App, beijing: dt.datetime) -> None:
    await earlier_cases(app, 3, "t")
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(created_at=beijing.astimezone(dt.UTC)))


BEIJING = dt.timezone(dt.timedelta(hours=8))
# 00:30 in Beijing on 6 December is still 5 December by UTC's date (16:30).
NOW = dt.datetime(2026, 12, 6, 0, 30, tzinfo=BEIJING)


async def test_applications_of_the_beijing_day_before_do_not_count(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applicant_handlers, "utcnow", lambda: NOW.astimezone(dt.UTC))
    await _three_cases_at(app, dt.datetime(2026, 12, 5, 23, 50, tzinfo=BEIJING))
    await chat.say("/apply")
    assert "每日提交上限" not in chat.text
    assert any(b.data.startswith("f:") for b in chat.buttons)  # the dialog started


async def test_applications_since_beijing_midnight_count(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applicant_handlers, "utcnow", lambda: NOW.astimezone(dt.UTC))
    await _three_cases_at(app, dt.datetime(2026, 12, 6, 0, 10, tzinfo=BEIJING))  # UTC: the 5th
    await chat.say("/apply")
    assert "每日提交上限" in chat.text
