"""A 差评 end to end, on SQLite + memory and on PostgreSQL + Redis: rating → item → 核实 →
整改 → 反馈 → 复核, its working-day deadlines, the reminder, and the escalations when missed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.app import App
from domain.bad_ratings import BadRatingLimits, chase_bad_ratings
from services.workdays import add_workdays
from storage.models import BadRating, Case, CaseRating
from support import Chat, bind_staff, delivered_case, notices_to


async def item_row(app: App) -> BadRating:
    async with app.services.db.sessions() as session:
        item = await session.scalar(select(BadRating))
    assert item is not None
    return item


async def test_bad_rating_is_verified_fixed_reported_back_and_reviewed(
    app: App, chat: Chat
) -> None:
    owner = await bind_staff(app, "许芳")  # 住建环保局's specialist
    unit_chief = await bind_staff(app, "何军")  # 住建环保局's 首席责任人
    lead_chief = await bind_staff(app, "周静")  # 政务服务中心's: reviews, and the ladder's top
    stranger = await bind_staff(app, "冯雪")  # 财政局: nothing to do with it
    number = await delivered_case(app, chat)

    delivered = (await notices_to(app, chat))[-1]
    await chat.press_data(delivered.buttons[1][0]["data"])  # 不满意
    assert "不满意" in chat.text and "1 个工作日内" in chat.text
    await chat.press("服务态度差")
    await chat.press("完成")
    assert "具体情况" in chat.text
    await chat.say("窗口人员解释不清楚")
    async with app.services.db.sessions() as session:
        rating = await session.scalar(select(CaseRating))
        case = await session.scalar(select(Case).where(Case.number == number))
    assert rating is not None and rating.level == "dissatisfied" and rating.points == ["attitude"]
    assert case is not None and case.status == "closed"

    item = await item_row(app)
    assert item.status == "verifying" and item.case_id == case.id
    assert item.verify_due_at == add_workdays(item.opened_at, 1)
    assert item.fix_due_at == add_workdays(item.opened_at, 15)
    opened = (await notices_to(app, owner))[-1]
    assert "差评待处理" in opened.text and number in opened.text
    assert any("差评待处理" in m.text for m in await notices_to(app, unit_chief))
    assert not [m for m in await notices_to(app, lead_chief) if "差评" in m.text]

    # 核实 is missed: the unit's chief is told once; the owners are reminded before 反馈.
    job = BadRatingLimits()
    late = item.verify_due_at + dt.timedelta(minutes=1)
    assert await chase_bad_ratings(app.services, item.verify_due_at - dt.timedelta(minutes=1)) == 0
    assert await chase_bad_ratings(app.services, late, job) == 1
    assert await chase_bad_ratings(app.services, late, job) == 0
    escalated = (await notices_to(app, unit_chief))[-1]
    assert "未在" in escalated.text and "回访核实" in escalated.text

    # Someone outside the unit cannot act on it, even with a forged button.
    await stranger.press_data(f"br:view:{item.id}")
    assert "未找到该差评" in stranger.text
    await stranger.press_data(f"br:step:verify:{item.id}")
    assert "未找到该差评" in stranger.text
    await chat.press_data(f"br:step:verify:{item.id}")  # the enterprise forging a staff button
    assert "权限" in chat.text or "未找到" in chat.text

    await owner.press_data(opened.buttons[0][0]["data"])  # 查看差评
    assert "服务态度差" in owner.text and "窗口人员解释不清楚" in owner.text
    await owner.press("记录核实结果")
    await owner.say("已电话联系企业，确认窗口解释不到位")
    assert (await item_row(app)).status == "fixing"
    assert [b.label for b in owner.buttons] == ["记录整改并反馈企业"]
    await owner.press_data(f"br:step:review:{item.id}")  # 复核 is not the unit's to press
    assert "没有执行该操作的权限" in owner.text
    assert (await item_row(app)).status == "fixing"

    reminder_at = item.fix_due_at - dt.timedelta(days=1)
    assert await chase_bad_ratings(app.services, reminder_at, job) == 2  # 何军 and 许芳
    assert "到期" in (await notices_to(app, owner))[-1].text
    assert await chase_bad_ratings(app.services, reminder_at, job) == 0

    await owner.press_data(f"br:view:{item.id}")
    await owner.press("记录整改并反馈企业")
    await owner.say("已对窗口人员进行培训，并补充了办事指南说明")
    item = await item_row(app)
    assert item.status == "reviewing" and item.fixed_at is not None
    outcome = (await notices_to(app, chat))[-1]
    assert "补充了办事指南说明" in outcome.text and "仅一次" in outcome.text
    review = (await notices_to(app, lead_chief))[-1]
    assert "请复核" in review.text and number in review.text
    # 反馈 was on time: a later tick escalates nothing further.
    assert await chase_bad_ratings(app.services, item.fix_due_at + dt.timedelta(days=1), job) == 0

    await chat.press_data(outcome.buttons[0][1]["data"])  # 满意
    assert "满意" in chat.text
    await chat.press_data(outcome.buttons[0][0]["data"])  # a second press
    assert "已评价过" in chat.text
    assert (await item_row(app)).fix_level == "satisfied"

    await lead_chief.press_data(review.buttons[0][0]["data"])
    await lead_chief.press("复核")
    await lead_chief.say("整改到位，同意办结")
    item = await item_row(app)
    assert item.status == "closed" and item.review_note == "整改到位，同意办结"
    assert any("已复核办结" in m.text for m in await notices_to(app, owner))


async def test_missed_report_back_climbs_to_the_lead_unit(app: App, chat: Chat) -> None:
    await bind_staff(app, "许芳")
    unit_chief = await bind_staff(app, "何军")
    lead_chief = await bind_staff(app, "周静")
    number = await delivered_case(app, chat)
    await chat.press_data(f"r:{number}:very_dissatisfied")
    item = await item_row(app)
    late = item.fix_due_at + dt.timedelta(minutes=1)
    # Both deadlines passed at once: each is escalated once, the 反馈 one to both chiefs.
    await chase_bad_ratings(app.services, late)
    texts = [m.text for m in await notices_to(app, lead_chief)]
    assert any("整改反馈" in t for t in texts)
    assert sum("整改反馈" in m.text for m in await notices_to(app, unit_chief)) == 1
    assert (await item_row(app)).escalation_level == 2
    assert await chase_bad_ratings(app.services, late) == 0


async def test_fix_days_setting_sets_the_deadline(app: App, chat: Chat) -> None:
    app.services.bad_ratings = BadRatingLimits(fix_workdays=5)
    number = await delivered_case(app, chat)
    await chat.press_data(f"r:{number}:dissatisfied")
    item = await item_row(app)
    assert item.fix_due_at == add_workdays(item.opened_at, 5)


async def test_a_good_level_opens_no_item(app: App, chat: Chat) -> None:
    number = await delivered_case(app, chat)
    await chat.press_data(f"r:{number}:basic")
    assert "满意的方面" in chat.text
    async with app.services.db.sessions() as session:
        assert await session.scalar(select(BadRating)) is None
    await chat.press_data(f"r:{number}:dissatisfied")  # one rating per case
    assert "评价过" in chat.text
    async with app.services.db.sessions() as session:
        assert await session.scalar(select(BadRating)) is None
        rating = await session.scalar(select(CaseRating))
    assert rating is not None and rating.level == "basic"
