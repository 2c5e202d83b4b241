"""An action and its 操作日志 record commit together: when the record cannot be written the
action is not done, a done action always has its record, and a refused or stale one is never
recorded as done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select, text, update

from bot.app import App
from domain.policy import china_today
from storage import applicants, audit, cases
from storage.cases import ApplicationData
from storage.db import Database
from storage.models import Agency, AuditRecord, Case, OutboxMessage
from support import bind_staff

BUSY = "系统繁忙"
CASE = ApplicationData(
    project_kind="general",
    company="湖南原子测试有限公司",
    project_name="原子测试项目",
    contact_name="王芳",
    contact_phone="+8613900003333",
    project_summary="用于操作日志原子性测试。",
    item_codes=("construction_permit",),
)


async def new_case(app: App, key: str = "a1") -> str:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        case = await cases.create(session, applicant.id, CASE, key)
    return case.number


async def actions(app: App) -> list[str]:
    async with app.services.db.sessions() as session:
        return list(await session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)))


async def status(app: App, number: str) -> str:
    async with app.services.db.sessions() as session:
        found = await session.scalar(select(Case.status).where(Case.number == number))
        assert found is not None
        return found


@asynccontextmanager
async def audit_log_refuses_inserts(db: Database) -> AsyncIterator[None]:
    """The audit log's table refuses every new row for a while (a full disk, a lost grant)."""
    statements = (
        [
            "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit down'; END $$",
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_down()",
        ]
        if db.engine.dialect.name == "postgresql"
        else [
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit down'); END"
        ]
    )
    async with db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    try:
        yield
    finally:
        async with db.engine.begin() as conn:
            if statements[1:]:
                await conn.execute(text("DROP TRIGGER audit_down ON audit_log"))
                await conn.execute(text("DROP FUNCTION audit_down()"))
            else:
                await conn.execute(text("DROP TRIGGER audit_down"))


async def test_an_action_whose_record_cannot_be_written_is_not_done(app: App) -> None:
    number = await new_case(app)
    window = await bind_staff(app, "李娜")
    await window.press_data(f"w:accept:{number}")
    async with audit_log_refuses_inserts(app.services.db):
        await window.say("同意受理")
        assert BUSY in window.text and "已更新" not in window.text
    assert await status(app, number) == "submitted"  # the step rolled back with its record
    async with app.services.db.sessions() as session:
        told = await session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == "u1"))
        assert list(told) == []  # and so did the applicant's notice
    assert "case.accept" not in await actions(app)

    # Once the log takes records again, the same step is done with exactly one record.
    await window.press_data(f"w:accept:{number}")
    await window.say("同意受理")
    assert await status(app, number) == "accepted"
    assert (await actions(app)).count("case.accept") == 1


async def test_an_assignment_is_not_made_without_its_record(app: App) -> None:
    number = await new_case(app)
    admin = await bind_staff(app, "陈晨")
    async with audit_log_refuses_inserts(app.services.db):
        await admin.say(f"/assign {number} 湘江工程咨询有限公司")
        assert BUSY in admin.text
    async with app.services.db.transaction() as session:
        today = china_today()
        await session.execute(
            update(Agency).values(contract_start=today, contract_end=today.replace(year=2099))
        )
    gao = await bind_staff(app, "高远")
    await gao.press_data(f"w:view:{number}")
    assert "未找到该申请" in gao.text  # no assignment was made
    assert "agency.assign" not in await actions(app)


async def test_refused_and_stale_steps_are_recorded_as_attempts_not_as_done(app: App) -> None:
    number = await new_case(app)
    window = await bind_staff(app, "李娜")
    other = await bind_staff(app, "王磊")
    specialist = await bind_staff(app, "吴婷")  # 经济发展局
    await window.press_data(f"w:accept:{number}")
    await other.press_data(f"w:accept:{number}")
    await window.say("同意受理")
    await other.say("也同意受理")  # the case has moved on: shown as it is now
    assert "状态已变化" in other.text
    await specialist.press_data(f"w:complete:{number}")  # not the specialist's step
    assert "没有执行该操作的权限" in specialist.text or "未找到该申请" in specialist.text
    done = await actions(app)
    assert done.count("case.accept") == 1
    assert done[-2:] == ["case.view", "button:CaseStep"]
    assert "case.complete" not in done


async def test_two_staff_acting_at_once_both_get_one_record_in_an_unbroken_chain(
    app: App,
) -> None:
    first, second = await new_case(app, "k1"), await new_case(app, "k2")
    window = await bind_staff(app, "李娜")
    other = await bind_staff(app, "王磊")
    await window.press_data(f"w:accept:{first}")
    await other.press_data(f"w:accept:{second}")
    await asyncio.gather(window.say("同意受理"), other.say("同意受理"))
    assert await status(app, first) == "accepted" and await status(app, second) == "accepted"
    assert (await actions(app)).count("case.accept") == 2
    async with app.services.db.sessions() as session:
        checked, broken = await audit.verify(session)
    assert checked == len(await actions(app)) and broken == []
