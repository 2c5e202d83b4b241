"""The 操作日志: one record per staff action and per view of an enterprise's data, with ids
only; append-only in the database; `audit verify` finds a record changed behind its back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bot.app import App
from domain.retention import Retention, purge
from storage import applicants, audit, cases, questions
from storage.cases import ApplicationData
from storage.db import Database
from storage.models import AuditRecord, Staff
from support import Chat, bind_staff

CASE = ApplicationData(
    project_kind="general",
    company="湖南审计测试有限公司",
    project_name="审计测试项目",
    contact_name="韩梅梅",
    contact_phone="+8613900002222",
    project_summary="用于操作日志测试。",
    item_codes=("construction_permit",),
)


async def new_case(app: App, data: ApplicationData = CASE, key: str = "a1") -> tuple[str, int]:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        case = await cases.create(session, applicant.id, data, key)
    return case.number, applicant.id


async def records(app: App) -> list[AuditRecord]:
    async with app.services.db.sessions() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def staff_id(app: App, name: str) -> Staff:
    async with app.services.db.sessions() as session:
        person = await session.scalar(select(Staff).where(Staff.name == name))
        assert person is not None
        return person


async def invite(app: App, name: str) -> str:
    async with app.services.db.transaction() as session:
        person = await session.scalar(select(Staff).where(Staff.name == name))
        assert person is not None
        return await questions.create_invite(session, person.id, dt.timedelta(hours=1))


async def one_more(app: App, before: int) -> AuditRecord:
    """The single record written since there were `before`."""
    found = await records(app)
    assert len(found) == before + 1, [r.action for r in found[before:]]
    return found[-1]


async def test_each_action_and_view_writes_one_record_with_ids_only(app: App) -> None:
    number, applicant_id = await new_case(app)
    window = await bind_staff(app, "李娜")
    admin = await bind_staff(app, "陈晨")
    li = await staff_id(app, "李娜")
    steps = [
        (window, f"w:view:{number}", "case.view"),
        (window, f"w:accept:{number}", "button:CaseStep"),  # asks for the note
        (window, "同意受理，材料齐全", "case.accept"),
        (window, f"w:start:{number}", "case.start"),
        (window, "/contact", "contact.view"),
        (admin, "/ledger", "export.ledger"),
        (admin, f"/assign {number} 湘江工程咨询有限公司", "agency.assign"),
        (admin, f"/unassign {number} 湘江工程咨询有限公司", "agency.unassign"),
        (admin, "/duty", "command:/duty"),
    ]
    for person, said, action in steps:
        before = len(await records(app))
        if ":" in said and not said.startswith("/"):
            await person.press_data(said)
        else:
            await person.say(said)
        record = await one_more(app, before)
        assert record.action == action, (said, record.action)
        assert record.actor_kind == "staff" and record.channel == "test"
        if said != "/contact" and "ledger" not in said and "duty" not in said:
            assert record.case_number == number and record.applicant_id == applicant_id
            assert record.case_id is not None
    viewed = next(r for r in await records(app) if r.action == "case.view")
    assert (
        viewed.actor_id == li.id and viewed.role == "window" and viewed.unit_id == li.department_id
    )
    assert {"contact_name", "contact_phone", "company"} <= set(viewed.fields)
    assert "leader_instruction" not in viewed.fields  # not shown to this window member yet
    # Ids and field names only: none of the enterprise's data is in the log.
    columns = AuditRecord.__table__.columns
    rows = [[getattr(r, c.name) for c in columns] for r in await records(app)]
    dumped = json.dumps(rows, default=str, ensure_ascii=False)
    for value in ("13900002222", "韩梅梅", "湖南审计测试有限公司", "同意受理"):
        assert value not in dumped
    # Applicants' own updates are not staff actions.
    before = len(await records(app))
    await Chat(app.router).say("/cases")
    assert len(await records(app)) == before


async def test_the_application_cannot_change_or_remove_a_record(app: App) -> None:
    number, _ = await new_case(app)
    window = await bind_staff(app, "李娜")
    await window.press_data(f"w:view:{number}")
    (record,) = await records(app)
    db = app.services.db
    for statement in (
        "UPDATE audit_log SET action = 'nothing' WHERE id = :id",
        "UPDATE audit_log SET fields = '[]', hash = hash WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text(statement), {"id": record.id})
    with pytest.raises(DBAPIError):
        async with db.transaction() as session:
            await session.execute(update(AuditRecord).values(actor_id=None))
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text("TRUNCATE audit_log"))
    assert [(r.id, r.action, r.hash) for r in await records(app)] == [
        (record.id, "case.view", record.hash)
    ]
    # And the repository offers no way to: nothing in storage/audit.py updates a row.
    source = await asyncio.to_thread(Path(audit.__file__).read_text, encoding="utf-8")
    assert "update(" not in source and "UPDATE" not in source.split('"""', 2)[2]


async def _tamper(db: Database, record_id: int) -> None:
    """Change a record directly in the database, as someone past the application would."""
    async with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            await conn.execute(text("DROP TRIGGER audit_log_no_update"))
        await conn.execute(
            text("UPDATE audit_log SET case_number = 'BDB-2026-999999' WHERE id = :id"),
            {"id": record_id},
        )


async def test_verify_finds_a_record_changed_in_the_database(app: App) -> None:
    number, _ = await new_case(app)
    window = await bind_staff(app, "李娜")
    for _ in range(3):
        await window.press_data(f"w:view:{number}")
    db = app.services.db
    async with db.sessions() as session:
        checked, broken = await audit.verify(session)
    assert checked == 3 and broken == []
    middle = (await records(app))[1]
    await _tamper(db, middle.id)
    async with db.sessions() as session:
        checked, broken = await audit.verify(session)
    assert [(b.id, b.reason) for b in broken] == [(middle.id, "content")]


async def test_retention_purges_only_whole_days_past_the_period(app: App) -> None:
    db = app.services.db
    now = dt.datetime.now(dt.UTC)
    async with db.transaction(immediate=True) as session:
        old = await audit.append(
            session, audit.Entry("case.view", "staff"), now - dt.timedelta(days=800)
        )
        kept = await audit.append(
            session, audit.Entry("case.view", "staff"), now - dt.timedelta(days=700)
        )
    purged = await purge(db, app.services.files_dir, Retention(audit_days=730), now)
    assert purged.audit_records == 1
    assert [r.id for r in await records(app)] == [kept.id]
    assert old.id != kept.id
    # Fewer than 180 days is never purged, whatever the setting says.
    purged = await purge(db, app.services.files_dir, Retention(audit_days=30), now)
    assert purged.audit_records == 1  # the 700-day record: past 180, inside nothing
    async with db.transaction(immediate=True) as session:
        await audit.append(session, audit.Entry("case.view", "staff"), now - dt.timedelta(days=100))
    purged = await purge(db, app.services.files_dir, Retention(audit_days=30), now)
    assert purged.audit_records == 0 and len(await records(app)) == 1


async def test_a_staff_view_of_a_case_is_recorded_in_every_channel(app: App) -> None:
    number, _ = await new_case(app)
    for channel in ("telegram", "wechat", "wecom", "web", "console"):
        person = Chat(app.router, f"{channel}-lina", channel)
        await person.say(f"/bind {await invite(app, '李娜')}")
        before = len(await records(app))
        await person.press_data(f"w:view:{number}")
        assert number in person.text
        record = await one_more(app, before)
        assert (record.action, record.channel, record.case_number) == ("case.view", channel, number)
