"""Visibility by role: each role walks the case screen, /inbox, the exports and 领导批示."""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from services import export
from storage import applicants, cases, key_projects
from storage.cases import ApplicationData
from storage.models import KeyProjectMember, Staff
from support import Chat, bind_staff

PHONE = "139 0000 1111"
INSTRUCTION = "请加快办理（领导批示内容）"
GENERAL = ApplicationData(
    project_kind="general",
    company="湖南可见性科技有限公司",
    credit_code=None,
    project_name="可见性测试项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于权限测试的项目简介。",
    item_codes=("construction_permit",),  # 住建环保局
    other_items=None,
)
KEY = dataclasses.replace(GENERAL, project_kind="key", item_codes=("project_filing",))  # 经发局


async def make_cases(app: App) -> tuple[str, str, str]:
    """A general case (施工许可), a key-project case with 冯雪 on its team, another general."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        general = await cases.create(session, applicant.id, GENERAL, "g1")
        key = await cases.create(session, applicant.id, KEY, "k1")
        other = await cases.create(session, applicant.id, GENERAL, "g2")
        project = await key_projects.create_for_case(session, key)
        feng = await session.scalar(select(Staff).where(Staff.name == "冯雪"))
        assert feng is not None
        session.add(KeyProjectMember(key_project_id=project.id, staff_id=feng.id))
    return general.number, key.number, other.number


async def screen(chat: Chat, number: str) -> str:
    await chat.press_data(f"w:view:{number}")
    return chat.text


async def test_each_role_sees_what_it_may(
    app: App, chat: Chat, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    general, key, other = await make_cases(app)
    li = await bind_staff(app, "李娜")  # window, will own `general`
    wang = await bind_staff(app, "王磊")  # window, owns nothing
    zhou = await bind_staff(app, "周静")  # chief
    xu = await bind_staff(app, "许芳")  # specialist of 住建环保局 (the item of `general`)
    feng = await bind_staff(app, "冯雪")  # specialist of 财政局, on the key project's team
    liu = await bind_staff(app, "刘洋")  # leader

    await li.press_data(f"w:accept:{general}")
    await li.say("同意受理")
    await liu.press_data(f"w:instruct:{general}")
    assert "未找到该申请" in liu.text  # not asked yet: a leader does not see a general case
    await li.press_data(f"w:leaders:{general}")
    await li.press("刘洋")
    await liu.press_data(f"w:instruct:{general}")
    await liu.say(INSTRUCTION)
    assert "领导批示已记录" in liu.text

    # The case screen: who sees the case, who sees the 领导批示.
    for person in (li, wang, zhou, xu, liu):
        assert PHONE in await screen(person, general), person.user
    for person in (li, zhou, liu):
        assert INSTRUCTION in await screen(person, general), person.user
    for person in (wang, xu):
        text = await screen(person, general)
        assert INSTRUCTION not in text and "领导批示" not in text, person.user
    with caplog.at_level(logging.INFO, logger="domain.policy"):
        assert await screen(feng, general) == "未找到该申请。"
    assert any("refused" in r.message and "hidden=True" in r.message for r in caplog.records)
    assert PHONE in await screen(feng, key)  # on the team
    assert PHONE in await screen(liu, key)  # a key project
    assert await screen(xu, key) == "未找到该申请。"
    assert await screen(liu, other) == "未找到该申请。"

    # /inbox lists exactly the visible cases.
    expected = {
        li: {general, key, other},
        wang: {general, key, other},
        zhou: {general, key, other},
        xu: {general, other},
        feng: {key},
        liu: {general, key},
    }
    for person, numbers in expected.items():
        await person.say("/inbox")
        listed = {b.data.rsplit(":", 1)[1] for b in person.buttons if b.data.startswith("w:view")}
        assert listed == numbers, person.user

    # Actions: only what the role owns.
    await xu.press_data(f"w:instruct:{general}")
    assert "没有执行该操作的权限" in xu.text
    await wang.press_data(f"w:leaders:{general}")
    assert "请选择" in wang.text  # any window staff may ask a leader
    await liu.press_data(f"w:start:{general}")
    assert "没有执行该操作的权限" in liu.text
    await chat.press_data(f"w:view:{general}")  # the applicant forging a staff button
    assert "没有执行该操作的权限" in chat.text

    # Exports: the ledger for lead units and leaders; the case list never has 领导批示.
    for person, allowed in ((liu, True), (zhou, True), (feng, False), (xu, False)):
        await person.say("/ledger")
        assert (person.replies[0].document is not None) == allowed, person.user
    path = tmp_path / "cases.csv"
    assert await export.export_cases(app.services.db, path, "csv") == 3
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 4  # the header and three cases
    assert all(INSTRUCTION not in value for row in rows for value in row)
