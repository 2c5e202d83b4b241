"""Staff case work from submitted to closed, on both backends."""

from __future__ import annotations

import datetime as dt
import io
import re

from docx import Document as Docx
from sqlalchemy import select, update

from bot.app import App
from domain.case_jobs import chase_cases
from handlers.casework import CaseLimits
from services import documents
from storage.models import Case, CaseEvent, CaseRating
from support import Chat, bind_staff, fill_application, notices_to

OPINION = "材料齐全，建议受理（内部意见）"
INSTRUCTION = "请加快办理（领导批示内容）"
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


async def submit(chat: Chat, items: tuple[str, ...] = ("施工许可",)) -> str:
    await fill_application(chat, items=items)
    await chat.press("提交")
    match = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    assert match
    return match.group(0)


async def case_row(app: App, number: str) -> Case:
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return case


async def test_case_walks_from_submitted_to_closed(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    xu = await bind_staff(app, "许芳")  # 住建环保局: owns 施工许可
    leader = await bind_staff(app, "刘洋")
    number = await submit(chat)
    (new_case,) = await notices_to(app, window)
    assert number in new_case.text
    await window.press_data(new_case.buttons[0][0]["data"])  # 处理
    assert "联系人：张伟 138 0013 8000" in window.text
    await window.press("受理")
    await window.say(OPINION)
    assert "已受理" in window.text
    await leader.press_data(f"w:view:{number}")
    assert "未找到该申请" in leader.text  # a leader sees the cases they are asked about
    await window.press("请领导批示")
    await window.press("刘洋")
    asked = (await notices_to(app, leader))[-1]
    assert number in asked.text
    await leader.press_data(asked.buttons[0][0]["data"])  # 领导批示
    await leader.say(INSTRUCTION)
    await window.press_data(f"w:view:{number}")
    assert OPINION in window.text and INSTRUCTION in window.text
    await window.press("材料交接完成")
    await window.press("要求补正")
    await window.say("1. 建设工程规划许可证复印件\n2. 施工合同")
    case = await case_row(app, number)
    assert case.status == "needs_supplement" and case.due_at is None and case.paused_seconds

    supplement = (await notices_to(app, chat))[-1]
    assert "施工合同" in supplement.text and "一次性告知" in supplement.text
    await chat.press_data(supplement.buttons[0][0]["data"])  # 上传材料
    await chat.press("上传完成")
    assert "还没有收到" in chat.text
    await chat.upload("../../etc/规划 许可证.exe", b"MZ\x90\x00", "application/octet-stream")
    assert "未接收" in chat.text and "20 MB" in chat.text
    await chat.upload("规划许可证.png", PNG, "image/png")
    assert "已收到“规划许可证.png”" in chat.text
    await chat.press("上传完成")
    assert "补正材料已提交" in chat.text
    case = await case_row(app, number)
    assert case.status == "in_progress" and case.due_at is not None
    assert "已补正材料" in (await notices_to(app, window))[-1].text

    await window.press_data(f"w:view:{number}")
    assert "规划许可证.png" in window.text
    await window.press("办结")
    assert "还有事项未办结" in window.text
    await xu.press_data(f"w:view:{number}")
    await xu.press("建筑工程施工许可证：已申报")
    await xu.press_data(f"w:view:{number}")
    await xu.press("建筑工程施工许可证：已办结")
    await window.press_data(f"w:view:{number}")
    await window.press("办结")
    await window.press("送达")
    await window.say("顺丰 SF1234567890")
    delivered = (await notices_to(app, chat))[-1]
    assert "SF1234567890" in delivered.text and "好差评" in delivered.text
    levels = [b["label"] for row in delivered.buttons for b in row]
    assert levels == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    await chat.press_data(delivered.buttons[0][0]["data"])  # 非常满意
    assert "非常满意" in chat.text and "满意的方面" in chat.text
    await chat.press("办事效率")
    await chat.press("办事便捷度")
    await chat.press("办事效率")  # ticked twice: off again
    assert "已选：办事便捷度" in chat.text
    await chat.press("完成")
    assert "意见或建议" in chat.text
    await chat.say("服务很周到")
    assert "已完结" in chat.text

    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        events = list(await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)))
        rating = await session.scalar(select(CaseRating))
    assert case.status == "closed"
    assert [e.to_status for e in events] == [
        "submitted",
        "accepted",
        "in_progress",
        "needs_supplement",
        "in_progress",
        "completed",
        "delivered",
        "closed",
    ]
    assert rating is not None and rating.level == "very_satisfied" and rating.score == 5
    assert rating.points == ["convenience"] and rating.comment == "服务很周到"
    assert rating.channel == "test"
    assert rating.staff_id == case.handler_id

    # Staff-only fields never reach the applicant: every notice, the timeline, the form.
    applicant_bound = await notices_to(app, chat)
    await chat.press_data(f"c:open:{number}")
    texts = [m.text for m in applicant_bound] + [chat.text]
    for message in applicant_bound:
        if message.document:
            document = await documents.resolve(app.services, message.document)
            assert document is not None
            texts.append("\n".join(p.text for p in Docx(io.BytesIO(document.content)).paragraphs))
            texts.extend(
                c.text
                for t in Docx(io.BytesIO(document.content)).tables
                for row in t.rows
                for c in row.cells
            )
    for text in texts:
        assert OPINION not in text and INSTRUCTION not in text
        assert "内部意见" not in text and "领导批示内容" not in text


async def test_rejection_reaches_the_applicant_with_the_reason(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    number = await submit(chat)
    await window.press_data(f"w:view:{number}")
    await window.press("不予受理")
    await window.say("该项目不在新区范围内")
    notice = (await notices_to(app, chat))[-1]
    assert "不予受理" in notice.text and "不在新区范围内" in notice.text
    assert (await case_row(app, number)).status == "rejected"


async def test_forbidden_transitions_and_roles_are_refused(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    specialist = await bind_staff(app, "许芳")  # 住建环保局: owns an item of the case
    stranger = await bind_staff(app, "冯雪")  # 财政局: no item in the case
    number = await submit(chat)
    await window.press_data(f"w:close:{number}")
    assert "不能进行该操作" in window.text
    await window.press_data(f"w:complete:{number}")
    assert "不能进行该操作" in window.text
    await specialist.press_data(f"w:start:{number}")
    assert "没有执行该操作的权限" in specialist.text
    await stranger.press_data(f"w:start:{number}")
    assert "未找到该申请" in stranger.text
    await chat.press_data(f"w:accept:{number}")  # the applicant forging a staff button
    assert "没有执行该操作的权限" in chat.text
    await window.press_data("w:accept:BDB-2026-999999")
    assert "未找到该申请" in window.text
    await chat.press_data(f"r:{number}:5")  # rating before delivery
    assert "评价过" in chat.text or "未找到" in chat.text
    assert (await case_row(app, number)).status == "submitted"


async def test_reminder_before_due_and_an_old_one_point_button_opens_a_bad_rating(
    app: App, chat: Chat
) -> None:
    window = await bind_staff(app, "李娜")
    chief = await bind_staff(app, "何军")  # 住建环保局: owns 施工许可, the case's one item
    number = await submit(chat)
    await window.press_data(f"w:view:{number}")
    await window.press("受理")
    await window.say("同意")
    case = await case_row(app, number)
    assert case.due_at is not None
    limits = CaseLimits(remind_before=dt.timedelta(hours=12))
    assert await chase_cases(app.services, case.due_at - dt.timedelta(days=2), limits) == 0
    assert await chase_cases(app.services, case.due_at - dt.timedelta(hours=1), limits) == 1
    assert await chase_cases(app.services, case.due_at, limits) == 0  # once only
    assert "到期" in (await notices_to(app, window))[-1].text
    await window.press("材料交接完成")
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(status="completed"))
    await window.press_data(f"w:view:{number}")
    await window.press("送达")
    await window.press("现场领取")
    await chat.press_data(f"r:{number}:1")  # a 1–5 button sent before the five levels
    assert "非常不满意" in chat.text and "原因" in chat.text
    await chat.press("办事效率低")
    await chat.press("完成")
    await chat.say("等了很久")
    async with app.services.db.sessions() as session:
        rating = await session.scalar(select(CaseRating))
    assert rating is not None and rating.level == "very_dissatisfied"
    assert rating.points == ["slow"] and rating.comment == "等了很久"
    low = await notices_to(app, chief)
    assert any("差评待处理" in m.text and "非常不满意" in m.text for m in low)


async def test_unanswered_follow_up_closes_after_the_limit(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    number = await submit(chat)
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(status="completed"))
    await window.press_data(f"w:view:{number}")
    await window.press("送达")
    await window.press("现场领取")
    delivered_at = (await case_row(app, number)).updated_at
    limits = CaseLimits(follow_up_close_workdays=5)
    await chase_cases(app.services, delivered_at + dt.timedelta(days=2), limits)
    assert (await case_row(app, number)).status == "delivered"
    await chase_cases(app.services, delivered_at + dt.timedelta(days=15), limits)
    assert (await case_row(app, number)).status == "closed"
