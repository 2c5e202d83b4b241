"""Agents of 第三方专业机构: the policy table below is the spec. Each row is one screen or verb
of an agent on one kind of target, and what the agent must get."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from sqlalchemy import select, update

from bot.app import App
from domain.agencies import watch_contracts
from domain.policy import china_today
from services.workdays import add_workdays
from storage import applicants, cases, key_projects
from storage.cases import ApplicationData
from storage.models import (
    Agency,
    AuditRecord,
    Case,
    CaseEvent,
    CaseFile,
    OpinionDraft,
    OutboxMessage,
    utcnow,
)
from support import Chat, bind_staff, notices_to

NOT_FOUND, NOT_ALLOWED, ENDED = "未找到该申请", "没有执行该操作的权限", "合同不在有效期内"
PHONE = "139 0000 1111"
INSTRUCTION = "请加快办理（领导批示内容）"
XJ, CS = "湘江工程咨询有限公司", "长沙审批代办服务有限公司"
GENERAL = ApplicationData(
    project_kind="general",
    company="湖南委托测试有限公司",
    project_name="委托测试项目",
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于第三方机构权限测试。",
    item_codes=("construction_permit",),
)
KEY = dataclasses.replace(GENERAL, project_kind="key", item_codes=("project_filing",))


async def contracts_run(app: App, days_left: int = 30) -> None:
    """Both sample agencies' contracts run from a month ago to `days_left` days from today."""
    today = china_today()
    async with app.services.db.transaction() as session:
        await session.execute(
            update(Agency).values(
                contract_start=today - dt.timedelta(days=30),
                contract_end=today + dt.timedelta(days=days_left),
            )
        )


async def make_cases(app: App) -> dict[str, str]:
    """Four cases of one enterprise: `mine` and the key project `key` go to 湘江 (mine to 高远
    by name), `other_agency` to 长沙, `unassigned` to nobody. Returns number by name, and the
    key project's id as `project`."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "u1")
        made = {
            name: await cases.create(session, applicant.id, data, name)
            for name, data in (
                ("mine", GENERAL),
                ("unassigned", GENERAL),
                ("other_agency", GENERAL),
                ("key", KEY),
            )
        }
        project = await key_projects.create_for_case(session, made["key"])
    numbers = {name: case.number for name, case in made.items()}
    return {**numbers, "project": str(project.id)}


async def screen(chat: Chat, number: str) -> str:
    await chat.press_data(f"w:view:{number}")
    return chat.text


async def test_agent_sees_and_does_only_what_is_assigned(app: App) -> None:
    await contracts_run(app)
    n = await make_cases(app)
    admin = await bind_staff(app, "陈晨")
    window = await bind_staff(app, "李娜")
    leader = await bind_staff(app, "刘洋")
    gao = await bind_staff(app, "高远")  # 湘江: an invite and /bind work for agents
    lin = await bind_staff(app, "林小雨")  # 湘江 too, not named on `mine`
    ma = await bind_staff(app, "马骏")  # 长沙

    await admin.say(f"/assign {n['mine']} {XJ} 高远")
    assert "已指派" in admin.text and n["mine"] in admin.text
    await admin.say(f"/assign {n['other_agency']} {CS}")
    await admin.say(f"/assign {n['project']} {XJ}")
    assert "已指派" in admin.text
    assert any(n["mine"] in row.text for row in await notices_to(app, gao))

    # The window works `mine` and a leader writes a 领导批示 the agent must never see.
    await window.press_data(f"w:accept:{n['mine']}")
    await window.say("同意受理")
    await window.press_data(f"w:start:{n['mine']}")
    await window.press_data(f"w:leaders:{n['mine']}")
    await window.press("刘洋")
    await leader.press_data(f"w:instruct:{n['mine']}")
    await leader.say(INSTRUCTION)

    # assigned → allowed: the case screen with the enterprise's contact, no 领导批示.
    text = await screen(gao, n["mine"])
    assert PHONE in text and INSTRUCTION not in text and "领导批示" not in text
    labels = [b.label for b in gao.buttons]
    assert not {"受理", "办结", "请领导批示", "领导批示"} & set(labels)
    item = next(b for b in gao.buttons if "已申报" in b.label)  # approval items: allowed
    await gao.press_data(item.data)
    assert "已申报" in gao.text
    assert PHONE in await screen(gao, n["key"])  # through the key project: allowed
    await gao.say("/inbox")
    assert n["mine"] in gao.text and n["key"] in gao.text
    assert n["unassigned"] not in gao.text and n["other_agency"] not in gao.text
    await gao.say("/kp")
    assert f"#{n['project']}" in gao.text
    await gao.press_data(f"k:view:{n['project']}")
    assert "推进团队" in gao.text

    # unassigned, other agencies, staff-only verbs → refused.
    table = [
        (gao, f"w:view:{n['unassigned']}", NOT_FOUND),  # the enterprise's other case
        (gao, f"w:view:{n['other_agency']}", NOT_FOUND),  # another agency's work
        (ma, f"w:view:{n['mine']}", NOT_FOUND),
        (ma, f"w:view:{n['key']}", NOT_FOUND),
        (lin, f"w:view:{n['mine']}", NOT_FOUND),  # assigned to 高远 by name
        (gao, f"w:accept:{n['unassigned']}", NOT_FOUND),
        (gao, f"w:complete:{n['mine']}", NOT_ALLOWED),  # the life cycle is the window's
        (gao, f"w:instruct:{n['mine']}", NOT_ALLOWED),  # 领导批示
        (gao, f"w:leaders:{n['mine']}", NOT_ALLOWED),
    ]
    for person, data, expected in table:
        await person.press_data(data)
        assert expected in person.text, (person.user.chat_id, data, person.text)
    assert PHONE in await screen(lin, n["key"])  # the project went to the whole agency
    for command in ("/ledger", "/agencies", f"/assign {n['unassigned']} {XJ}"):
        await gao.say(command)
        assert NOT_ALLOWED in gao.text, command
    await gao.say("/kp_new 新洽谈项目|某某公司")
    assert "请联系产业促进局" in gao.text
    await gao.say(f"/kp_add {n['project']} 周静")
    assert "周静" not in gao.text

    # The roster's phone list beyond the team: an agent gets the team of their projects only.
    await gao.say("/contact")
    assert "0731-88880201" in gao.text  # 赵刚, chief of 产业促进局, is on the project's team
    assert "0731-88880302" not in gao.text and "0731-88880105" not in gao.text

    # Unassigning is immediate: the next screen is refused.
    await admin.say(f"/unassign {n['mine']} {XJ}")
    assert "已撤销" in admin.text
    assert NOT_FOUND in await screen(gao, n["mine"])
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == n["mine"]))
        assert case is not None
        notes = [
            e.note
            for e in await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
            if not e.visible_to_applicant and e.note
        ]
    assert any("指派第三方机构" in note and XJ in note for note in notes)
    assert any("撤销第三方机构指派" in note for note in notes)

    # The contract ends: the very next request is refused, whatever it asks.
    async with app.services.db.transaction() as session:
        yesterday = china_today() - dt.timedelta(days=1)
        await session.execute(
            update(Agency).where(Agency.name == XJ).values(contract_end=yesterday)
        )
    await gao.press_data(f"w:view:{n['key']}")
    assert ENDED in gao.text and PHONE not in gao.text
    await gao.say("/inbox")
    assert ENDED in gao.text and n["key"] not in gao.text
    await gao.press_data(f"k:view:{n['project']}")
    assert ENDED in gao.text
    assert PHONE in await screen(ma, n["other_agency"])  # 长沙's contract still runs


async def test_non_admins_cannot_assign(app: App) -> None:
    await contracts_run(app)
    n = await make_cases(app)
    for name in ("李娜", "周静", "孙悦"):
        person = await bind_staff(app, name)
        await person.say(f"/assign {n['mine']} {XJ}")
        assert NOT_ALLOWED in person.text and "已指派" not in person.text
    gao = await bind_staff(app, "高远")
    assert NOT_FOUND in await screen(gao, n["mine"])


async def test_contract_end_warns_admins_then_tells_agents_once(app: App) -> None:
    admin = await bind_staff(app, "陈晨")
    gao = await bind_staff(app, "高远")
    now = utcnow()
    warn_day = add_workdays(now, 5).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    async with app.services.db.transaction() as session:
        await session.execute(update(Agency).where(Agency.name == XJ).values(contract_end=warn_day))
        await session.execute(
            update(Agency).where(Agency.name == CS).values(contract_end=warn_day.replace(year=2099))
        )
    await watch_contracts(app.services, now)
    await watch_contracts(app.services, now)  # once per end date
    warnings = [m for m in await notices_to(app, admin) if "将于" in m.text]
    assert len(warnings) == 1 and XJ in warnings[0].text and CS not in warnings[0].text
    assert not await notices_to(app, gao)

    later = now + dt.timedelta(days=60)
    await watch_contracts(app.services, later)
    await watch_contracts(app.services, later)
    told = await notices_to(app, gao)
    assert len(told) == 1 and "已于" in told[0].text and "访问权限已结束" in told[0].text
    async with app.services.db.sessions() as session:
        ended = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.text.contains("自动结束"))
            )
        )
    assert len(ended) == 1 and ended[0].chat_id == admin.user.chat_id
    assert re.search(str(warn_day), told[0].text)


async def test_enterprise_sees_which_units_viewed_its_case_not_who(app: App, chat: Chat) -> None:
    await contracts_run(app)
    n = await make_cases(app)
    admin = await bind_staff(app, "陈晨")
    await admin.say(f"/assign {n['mine']} {XJ}")
    window = await bind_staff(app, "李娜")
    gao = await bind_staff(app, "高远")
    await chat.say(f"/viewed {n['mine']}")
    assert "还没有工作人员查看过" in chat.text
    await window.press_data(f"w:view:{n['mine']}")
    await gao.press_data(f"w:view:{n['mine']}")
    await gao.press_data(f"w:view:{n['unassigned']}")  # refused: not a view of that case
    await chat.say(f"/viewed {n['mine']}")
    assert "政务服务中心" in chat.text and XJ in chat.text
    assert "李娜" not in chat.text and "高远" not in chat.text
    await chat.say(f"/viewed {n['unassigned']}")
    assert "还没有工作人员查看过" in chat.text
    stranger = Chat(app.router, "someone-else")
    await stranger.say(f"/viewed {n['mine']}")
    assert "未找到该申请" in stranger.text


PDF = b"%PDF-1.4\n"


async def test_agent_replies_uploads_and_drafts_only_on_assigned_work(app: App) -> None:
    """给企业留言, 上传材料, 起草经办人意见: allowed on the assigned case, refused on the
    enterprise's other case and another agency's, refused at once after the contract; the
    window confirms a draft into the case's 经办人意见. Each done step is one record."""
    await contracts_run(app)
    n = await make_cases(app)
    admin = await bind_staff(app, "陈晨")
    window = await bind_staff(app, "李娜")
    gao = await bind_staff(app, "高远")
    await admin.say(f"/assign {n['mine']} {XJ} 高远")
    await admin.say(f"/assign {n['other_agency']} {CS}")
    await window.press_data(f"w:accept:{n['mine']}")
    await window.say("同意受理")
    enterprise = Chat(app.router, "u1")

    await screen(gao, n["mine"])
    labels = [b.label for b in gao.buttons]
    assert {"给企业留言", "上传材料", "起草经办人意见"} <= set(labels)
    assert not [label for label in labels if label.startswith("确认意见草稿")]

    # assigned → allowed
    await gao.press_data(f"w:reply:{n['mine']}")
    await gao.say("您好，请于周五前提供施工图审查合格书。")
    assert "留言已发送" in gao.text
    told = [m.text for m in await notices_to(app, enterprise)]
    assert any("施工图审查合格书" in text and n["mine"] in text for text in told)
    await gao.press_data(f"w:upload:{n['mine']}")
    await gao.upload("施工图审查.pdf", PDF, "application/pdf")
    assert "已添加到申请" in gao.text
    await gao.press_data(f"w:draft:{n['mine']}")
    await gao.say("材料齐全，建议予以办理。")
    assert "草稿已保存" in gao.text
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == n["mine"]))
        assert case is not None and case.handler_opinion == "同意受理"  # not yet confirmed
        uploaded = await session.scalars(select(CaseFile).where(CaseFile.case_id == case.id))
        assert [f.name for f in uploaded if f.kind == "staff"] == ["施工图审查.pdf"]

    # The window sees the draft and confirms it: it becomes the 经办人意见.
    assert "材料齐全，建议予以办理。" in await screen(window, n["mine"])
    await window.press("确认意见草稿 1")
    assert "经办人意见已确认" in window.text and "确认意见草稿" not in str(window.buttons)
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == n["mine"]))
        assert case is not None and case.handler_opinion == "材料齐全，建议予以办理。"
        drafts = list(await session.scalars(select(OpinionDraft)))
    assert len(drafts) == 1 and drafts[0].confirmed_at is not None
    await window.press_data(f"w:confirm:{n['mine']}:{drafts[0].id}")  # a second press
    assert "已被确认" in window.text
    await gao.press_data(f"w:confirm:{n['mine']}:{drafts[0].id}")  # not the agent's to confirm
    assert NOT_ALLOWED in gao.text

    # unassigned, another agency's → refused, whatever the buttons say
    for other in (n["unassigned"], n["other_agency"]):
        for data in (f"w:reply:{other}", f"w:upload:{other}", f"w:draft:{other}"):
            await gao.press_data(data)
            assert NOT_FOUND in gao.text, data
    await gao.press_data(f"w:reply:{n['mine']}")  # the prompt is open …
    await admin.say(f"/unassign {n['mine']} {XJ}")  # … and the assignment ends meanwhile
    await gao.say("这条留言不应送达")
    assert NOT_FOUND in gao.text
    assert not any("不应送达" in m.text for m in await notices_to(app, enterprise))

    # after the contract: refused at once, even with a prompt open
    await admin.say(f"/assign {n['mine']} {XJ} 高远")
    await gao.press_data(f"w:draft:{n['mine']}")
    async with app.services.db.transaction() as session:
        yesterday = china_today() - dt.timedelta(days=1)
        await session.execute(
            update(Agency).where(Agency.name == XJ).values(contract_end=yesterday)
        )
    await gao.say("合同结束后的草稿")
    assert ENDED in gao.text
    await gao.press_data(f"w:upload:{n['mine']}")
    assert ENDED in gao.text
    async with app.services.db.sessions() as session:
        assert len(list(await session.scalars(select(OpinionDraft)))) == 1
        done = list(
            await session.scalars(
                select(AuditRecord.action).where(
                    AuditRecord.action.in_(
                        ("case.reply", "case.upload", "case.draft_opinion", "case.confirm_opinion")
                    )
                )
            )
        )
    assert sorted(done) == [
        "case.confirm_opinion",
        "case.draft_opinion",
        "case.reply",
        "case.upload",
    ]
