"""Consultation: FAQ answers, 首问责任制 routing, reply relay, 转办, closing, reminders."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, func, select, update

from bot.app import App
from domain.reminders import QuestionLimits, chase_questions
from handlers.consult import Consultation
from storage import questions
from storage.models import ConsultationRecord, FaqEntry, Question, Staff
from support import Chat, bind_staff, notices_to


async def ask_person(chat: Chat, text: str) -> None:
    """Ask, and go to a person if the FAQ offered an answer or a choice instead."""
    await chat.say(text)
    for label in ("转人工", "都不是，转人工"):
        if any(b.label == label for b in chat.buttons):
            await chat.press(label)
            return


async def test_faq_question_is_answered_at_once(chat: Chat) -> None:
    await chat.say("帮代办服务要不要交钱？")
    assert "免费" in chat.text
    assert chat.button("转人工")


async def test_unsure_question_offers_choices_and_answers_the_pick(chat: Chat) -> None:
    await chat.say("/ask 证")
    if chat.button("都不是，转人工"):
        await chat.press_data(chat.buttons[0].data)
        assert chat.button("转人工")


async def test_unknown_question_is_owned_by_the_window_staff_on_duty(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    enterprise = Chat(app.router, "ent")
    await enterprise.say("我们厂区门口的路灯坏了好几天，能不能帮忙反映一下")
    assert "李娜" in enterprise.text and "负责" in enterprise.text
    (notice,) = await notices_to(app, li)
    assert "路灯" in notice.text and "首问责任人" in notice.text
    labels = [button["label"] for row in notice.buttons for button in row]
    assert labels == ["回复", "转办", "已解决"]


async def statements_while(app: App, chat: Chat, text: str) -> list[str]:
    """The SQL statements the chat's message causes (SQLite's BEGIN IMMEDIATE and the FAQ's
    periodic version check left out)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "faq" not in statement and not statement.startswith("BEGIN"):
            seen.append(" ".join(statement.split()).upper())

    engine = app.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await chat.say(text)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


async def test_a_question_handed_to_a_person_costs_five_statements(app: App) -> None:
    await bind_staff(app, "李娜", "li")
    app.services.db.behind.interval = 3600  # the counts are written when the test says
    enterprise = Chat(app.router, "ent")
    await enterprise.say("我们厂区门口的路灯坏了好几天，能不能帮忙反映一下")
    seen = await statements_while(app, enterprise, "园区的食堂菜品太少了，能不能反映一下")
    assert "负责" in enterprise.text
    # The applicant read and locked at once; the open-question limit, the hinted unit and
    # the first responder in one SELECT; the question, its first message, the owner's notice.
    assert [s.split()[0] for s in seen] == ["SELECT", "SELECT", "INSERT", "INSERT", "INSERT"]
    assert "FOR UPDATE" in seen[0] or app.services.db.is_sqlite  # SQLite: BEGIN IMMEDIATE


async def test_an_answered_question_opens_no_transaction_and_is_counted_after(
    app: App,
) -> None:
    app.services.db.behind.interval = 3600  # written when the test says
    chat = Chat(app.router, "ent")
    seen = await statements_while(app, chat, "帮代办服务要不要交钱？")
    assert "免费" in chat.text
    assert seen == []  # the enterprise waits for no database round trip
    await app.services.db.behind.flush()
    async with app.services.db.sessions() as session:
        outcomes = (await session.scalars(select(ConsultationRecord.outcome))).all()
        assert outcomes == ["answer"]
        assert await session.scalar(select(func.count(Question.id))) == 0


async def test_round_robin_among_staff_on_duty(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    wang = await bind_staff(app, "王磊", "wang")
    for n in range(4):
        await Chat(app.router, f"ent{n}").say(f"第{n}个问题：园区的食堂菜品太少了")
    assert len(await notices_to(app, li)) == 2
    assert len(await notices_to(app, wang)) == 2


async def test_reply_reaches_the_enterprise_naming_the_owner(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    enterprise = Chat(app.router, "ent")
    await enterprise.say("/ask 厂区门口的路灯坏了怎么报修")
    (notice,) = await notices_to(app, li)
    reply_button = notice.buttons[0][0]["data"]
    await li.press_data(reply_button)
    assert "请输入" in li.text
    await li.say("已转市政部门处理，预计三天内修复。<b>谢谢</b>")
    assert "已发送" in li.text
    (answer,) = await notices_to(app, enterprise)
    assert "李娜" in answer.text and "预计三天内修复" in answer.text
    assert "&lt;b&gt;谢谢&lt;/b&gt;" in answer.text
    assert answer.buttons[0][0]["label"] == "继续追问"
    await enterprise.press_data(answer.buttons[0][0]["data"])
    await enterprise.say("好的，那具体是哪天？")
    assert "李娜" in enterprise.text
    follow = (await notices_to(app, li))[-1]
    assert "具体是哪天" in follow.text


async def test_forwarded_question_stays_owned_by_the_first_responder(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    xu = await bind_staff(app, "许芳", "xu")  # 住建环保局 specialist
    enterprise = Chat(app.router, "ent")
    await ask_person(enterprise, "我们的塔吊安装告知需要准备哪些特别的东西")
    (notice,) = await notices_to(app, li)
    await li.press_data(notice.buttons[0][1]["data"])  # 转办
    await li.press("住建环保局")
    assert "许芳" in li.text and "仍是" not in li.text
    (forwarded,) = await notices_to(app, xu)
    assert "李娜" in forwarded.text
    assert [b["label"] for row in forwarded.buttons for b in row] == ["回复"]
    await xu.press_data(forwarded.buttons[0][0]["data"])
    await xu.say("需要提供设备产权备案证明和安装方案。")
    (answer,) = await notices_to(app, enterprise)
    assert "李娜" in answer.text and "产权备案" in answer.text  # the enterprise sees its owner
    told = (await notices_to(app, li))[-1]
    assert "许芳" in told.text and "产权备案" in told.text
    async with app.services.db.sessions() as session:
        (question,) = list(await session.scalars(select(Question)))
        owner = await session.get(Staff, question.owner_id)
    assert owner is not None and owner.name == "李娜"
    # Only the owner closes it.
    await xu.press_data(f"s:done:{question.id}")
    assert "不由您负责" in xu.text
    await li.press_data(f"s:done:{question.id}")
    assert "已办结" in li.text
    assert "已办结" in (await notices_to(app, enterprise))[-1].text


async def test_forged_staff_actions_are_refused(app: App) -> None:
    await bind_staff(app, "李娜", "li")
    wang = await bind_staff(app, "王磊", "wang")
    enterprise = Chat(app.router, "ent")
    await enterprise.say("/ask 食堂的菜价能不能再便宜一点呢")
    async with app.services.db.sessions() as session:
        (question,) = list(await session.scalars(select(Question)))
    await enterprise.press_data(f"s:done:{question.id}")
    assert "没有执行该操作的权限" in enterprise.text
    await wang.press_data(f"s:reply:{question.id}")
    assert "不由您负责" in wang.text
    await wang.press_data(f"s:fwdto:{question.id}:finance")
    assert "不由您负责" in wang.text
    await enterprise.press_data("s:duty:1")
    assert "没有执行该操作的权限" in enterprise.text
    await wang.say("/duty")
    assert "没有执行该操作的权限" in wang.text


async def test_question_waits_for_duty_then_goes_to_whoever_comes_on(app: App) -> None:
    async with app.services.db.transaction() as session:
        await session.execute(update(Staff).values(on_duty=False))
    li = await bind_staff(app, "李娜", "li")
    admin = await bind_staff(app, "陈晨", "admin")
    enterprise = Chat(app.router, "ent")
    await ask_person(enterprise, "周末能不能到大厅办理业务呀")
    assert "暂无值班人员" in enterprise.text
    assert await notices_to(app, li) == []
    await admin.say("/duty")
    await admin.press("李娜")
    assert "🟢 李娜" in admin.text
    (notice,) = await notices_to(app, li)
    assert "周末" in notice.text


async def test_invite_codes_are_single_use_and_expire(app: App) -> None:
    async with app.services.db.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == "王磊"))
        assert staff is not None
        code = await questions.create_invite(session, staff.id, dt.timedelta(hours=1))
        old = await questions.create_invite(session, staff.id, dt.timedelta(seconds=-1))
    first, second = Chat(app.router, "a"), Chat(app.router, "b")
    await first.say(f"/bind {code}")
    assert "绑定成功" in first.text
    await second.say(f"/bind {code}")
    assert "无效或已过期" in second.text
    await second.say(f"/bind {old}")
    assert "无效或已过期" in second.text
    await second.say("/bind")
    assert "无效或已过期" in second.text


async def test_reminder_then_escalation_counts_working_days_across_a_holiday(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    zhou = await bind_staff(app, "周静", "zhou")  # chief of 政务服务中心
    await Chat(app.router, "ent").say("/ask 园区有没有人才公寓可以申请入住")
    created = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC)  # Wed 10:00 in Changsha
    async with app.services.db.transaction() as session:
        await session.execute(update(Question).values(created_at=created))
    limits = QuestionLimits(remind_after=dt.timedelta(hours=4), escalate_after_workdays=1)
    services = app.services
    assert await chase_questions(services, created + dt.timedelta(hours=3), limits) == 0
    assert await chase_questions(services, created + dt.timedelta(hours=5), limits) == 1
    assert "⏰" in (await notices_to(app, li))[-1].text
    assert await chase_questions(services, created + dt.timedelta(hours=6), limits) == 0
    # 10-01 … 10-07 is the National Day holiday: one working day later is 10-08 10:00.
    assert await chase_questions(services, dt.datetime(2026, 10, 7, 12, tzinfo=dt.UTC), limits) == 0
    assert await notices_to(app, zhou) == []
    assert await chase_questions(services, dt.datetime(2026, 10, 8, 3, tzinfo=dt.UTC), limits) == 1
    (escalation,) = await notices_to(app, zhou)
    assert "首席责任人" in escalation.text and "李娜" in escalation.text


async def test_faq_answer_has_no_empty_lines_even_when_imported_with_them(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Consultation, "RELOAD_CHECK_SECONDS", 0.0)  # the import seen at once
    chat = Chat(app.router)
    async with app.services.db.transaction() as session:
        await session.execute(
            update(FaqEntry)
            .where(FaqEntry.key == "cost_free")
            .values(
                answer="全程免费。\n\n\n材料邮寄也免费。\n  \n", updated_at=dt.datetime.now(dt.UTC)
            )
        )
    await chat.say("帮代办服务要不要交钱？")
    assert "材料邮寄也免费。\n如未解决您的问题" in chat.text
    assert "\n\n" not in chat.text and "\n \n" not in chat.text
