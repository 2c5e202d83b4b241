"""The monthly 工作简报: on the first working day of a month (from 09:00 China time) the
previous month's report goes to the lead units' administrators through the outbox, once,
with the report attached; on SQLite + memory and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

from docx import Document as Docx
from sqlalchemy import select
from stats_history import seed_history

from bot.app import App
from domain.monthly_report import ReportSchedule, send_monthly_report
from services import documents
from services.workdays import CHINA
from storage.models import Department, MonthlyReport, OutboxMessage, Role, Staff
from support import bind_staff, notices_to


def china(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=CHINA).astimezone(dt.UTC)


async def add_admin(app: App, unit: str, name: str) -> None:
    async with app.services.db.transaction() as session:
        department = await session.scalar(select(Department).where(Department.code == unit))
        assert department is not None
        session.add(Staff(department_id=department.id, name=name, role=Role.ADMIN))


async def report_rows(app: App) -> list[OutboxMessage]:
    async with app.services.db.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.idempotency_key.like("monthly_report:%"))
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def test_the_report_goes_to_lead_unit_admins_on_the_first_working_day_once(
    app: App,
) -> None:
    await seed_history(app)
    await add_admin(app, "industry_promotion", "孙敏")
    await add_admin(app, "finance", "吴迪")  # an administrator, but not of a lead unit
    centre = await bind_staff(app, "陈晨")
    industry = await bind_staff(app, "孙敏")
    finance = await bind_staff(app, "吴迪")
    chief = await bind_staff(app, "周静")  # a lead unit's chief, not an administrator

    # 1 November 2025 is a Saturday: the first working day is Monday the 3rd, from 09:00.
    assert await send_monthly_report(app.services, china(11, 1, 10)) == 0
    assert await send_monthly_report(app.services, china(11, 3, 8, 59)) == 0
    assert await report_rows(app) == []

    assert await send_monthly_report(app.services, china(11, 3, 9, 1)) == 2
    for chat in (centre, industry):
        [notice] = await notices_to(app, chat)
        assert "2025-10 月《帮代办服务工作简报》" in notice.text
        # October (hand-worked in stats_history.py): received C3 and C5, accepted C1 and
        # C2, delivered C1, C2 and C4; rated 非常满意 and 不满意 → 50 %; one 差评.
        assert "本月收件 2 件，受理 2 件，送达 3 件；好差评 2 条，满意率 50.0%；差评 1 条" in (
            notice.text
        )
        assert notice.document == {"render": "monthly_report", "month": "2025-10", "format": "docx"}
    assert await notices_to(app, finance) == [] and await notices_to(app, chief) == []

    # The next tick, a later day of the month: nothing more.
    assert await send_monthly_report(app.services, china(11, 3, 9, 2)) == 0
    assert await send_monthly_report(app.services, china(11, 20, 10)) == 0
    assert len(await report_rows(app)) == 2
    async with app.services.db.sessions() as session:
        sent = await session.get(MonthlyReport, "2025-10")
    assert sent is not None and sent.recipients == 2


async def test_a_holiday_moves_the_first_working_day(app: App) -> None:
    await bind_staff(app, "陈晨")
    # October 2025: 1–8 off, Thursday the 9th is the first working day.
    assert await send_monthly_report(app.services, china(10, 8, 10)) == 0
    assert await send_monthly_report(app.services, china(10, 9, 10)) == 1
    [row] = await report_rows(app)
    assert "2025-09 月" in row.text


async def test_several_workers_send_the_report_once(app: App) -> None:
    await bind_staff(app, "陈晨")
    now = china(11, 3, 9, 30)
    counts = await asyncio.gather(*(send_monthly_report(app.services, now) for _ in range(4)))
    assert sorted(counts) == [0, 0, 0, 1]
    assert len(await report_rows(app)) == 1


async def test_the_attached_report_carries_the_months_figures(app: App) -> None:
    await seed_history(app)
    await bind_staff(app, "陈晨")
    await send_monthly_report(app.services, china(11, 3, 10), ReportSchedule(fmt="xlsx"))
    [row] = await report_rows(app)
    assert row.document is not None and row.document["format"] == "xlsx"
    sheet = await documents.resolve(app.services, row.document)
    assert sheet is not None and sheet.name == "帮代办服务工作简报-2025-10.xlsx"
    word = await documents.resolve(app.services, {**row.document, "format": "docx"})
    assert word is not None
    document = Docx(io.BytesIO(word.content))
    assert document.paragraphs[0].text == "帮代办服务工作简报 2025-10"
    summary = [[c.text for c in r.cells] for r in document.tables[0].rows]
    assert ["收件", "2"] in summary and ["送达", "3"] in summary
    assert await documents.resolve(app.services, {**row.document, "month": "2025-13"}) is None
