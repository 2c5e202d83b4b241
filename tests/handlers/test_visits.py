"""上门服务 through the core on both backends: the team proposes, the enterprise proposes
another time, the team accepts it, a unit confirms, it shows on /appointments, reminders the
working day before and one hour before, and 已上门 with a record on the project's timeline."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from bot.app import App
from domain.visits import remind_visits
from services.workdays import CHINA
from storage.models import KeyProject, Milestone, Visit, VisitUnit
from support import Chat, bind_staff, fill_application, notices_to

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)  # a Monday morning


def set_clock(app: App, moment: dt.datetime) -> None:
    app.services.clock = lambda: moment.astimezone(dt.UTC)


async def key_project(app: App, enterprise: Chat) -> int:
    await fill_application(enterprise, kind="重点产业项目")
    await enterprise.press("提交")
    async with app.services.db.sessions() as session:
        project_id = await session.scalar(select(KeyProject.id))
    assert project_id is not None
    return project_id


async def the_visit(app: App) -> Visit:
    async with app.services.db.sessions() as session:
        visit = await session.scalar(select(Visit))
    assert visit is not None
    return visit


def button_data(notice_buttons: list[list[dict[str, str]]], label: str) -> str:
    found = [b["data"] for row in notice_buttons for b in row if b["label"] == label]
    assert found, notice_buttons
    return found[0]


async def test_visit_proposed_moved_by_the_enterprise_confirmed_reminded_and_recorded(
    app: App, chat: Chat
) -> None:
    set_clock(app, NOW)
    project_id = await key_project(app, chat)
    zhao = await bind_staff(app, "赵刚")  # 产业促进局, on the team
    deng = await bind_staff(app, "邓伟")  # 国土规划局, goes on the visit

    await zhao.say(f"/visit {project_id} | 2026-12-09 10:00 | 麓谷大道 1 号 | 国土规划局 火星局")
    assert "未找到以下单位：火星局" in zhao.text
    await zhao.say(f"/visit {project_id} | 2026-12-12 10:00 | 麓谷大道 1 号 | 国土规划局")
    assert "不是工作日" in zhao.text  # a Saturday
    await zhao.say(f"/visit {project_id} | 2026-12-09 10:00 | 麓谷大道 1 号 | 国土规划局")
    assert "已发起上门服务 SF-000001" in zhao.text.replace("<b>", "").replace("</b>", "")

    (proposal,) = [n for n in await notices_to(app, chat) if "拟上门服务" in n.text]
    assert "2026-12-09 10:00" in proposal.text and "麓谷大道 1 号" in proposal.text
    stranger = Chat(app.router, "u9")
    await stranger.press_data(button_data(proposal.buttons, "确认上门时间"))
    assert "未找到该上门服务" in stranger.text
    await chat.press_data(button_data(proposal.buttons, "另约时间"))
    await chat.say("后天下午")
    assert "时间格式不正确" in chat.text
    await chat.say("2026-12-13 14:30")  # a Sunday: asked again, the step kept
    assert "不是工作日" in chat.text
    await chat.say("２０２６-12-10 14:30")  # full-width digits are the same
    assert "2026-12-10 14:30" in chat.text and "转告服务团队" in chat.text
    assert (await the_visit(app)).status == "rescheduling"

    (asked,) = [n for n in await notices_to(app, zhao) if "希望另约" in n.text]
    await deng.press_data(button_data(asked.buttons, "同意企业时间"))  # not on the team
    assert "未找到该上门服务" in deng.text
    await zhao.press_data(button_data(asked.buttons, "同意企业时间"))
    assert "已按企业希望的时间确认" in zhao.text
    await zhao.press_data(button_data(asked.buttons, "同意企业时间"))
    assert "无需重复操作" in zhao.text
    visit = await the_visit(app)
    assert visit.status == "confirmed"
    assert visit.starts_at == dt.datetime(2026, 12, 10, 14, 30, tzinfo=CHINA).astimezone(dt.UTC)
    assert any("已同意您提出的时间" in n.text for n in await notices_to(app, chat))

    moved = [n for n in await notices_to(app, deng) if "已改期" in n.text][-1]
    await deng.press_data(button_data(moved.buttons, "确认参加"))
    assert "已确认贵单位参加" in deng.text
    await deng.say("/appointments week")
    assert "SF-000001" in deng.text and "麓谷大道 1 号" in deng.text
    other = await bind_staff(app, "郑凯")  # 财政局 does not go: not on its list
    await other.say("/appointments week")
    assert "SF-000001" not in other.text

    async def tick(moment: dt.datetime) -> int:
        return await remind_visits(app.services, moment.astimezone(dt.UTC))

    assert await tick(dt.datetime(2026, 12, 9, 15, 59, tzinfo=CHINA)) == 0
    assert await tick(dt.datetime(2026, 12, 9, 16, 0, tzinfo=CHINA)) == 2  # enterprise, 邓伟
    assert await tick(dt.datetime(2026, 12, 9, 17, 0, tzinfo=CHINA)) == 0
    assert await tick(dt.datetime(2026, 12, 10, 13, 30, tzinfo=CHINA)) == 2
    assert await tick(dt.datetime(2026, 12, 10, 14, 0, tzinfo=CHINA)) == 0
    reminders = [n.text for n in await notices_to(app, chat) if "⏰" in n.text]
    assert len(reminders) == 2 and "一小时后" in reminders[1]

    set_clock(app, dt.datetime(2026, 12, 10, 17, 0, tzinfo=CHINA))
    await deng.say("/appointments week")
    await deng.press("已上门 SF-000001")
    await deng.say("现场查看用地红线，企业需补充规划条件")
    assert "已上门" in deng.text and "星城智造产业园一期" in deng.text
    async with app.services.db.sessions() as session:
        titles = list(await session.scalars(select(Milestone.title)))
    assert any("上门服务已完成" in t and "补充规划条件" in t for t in titles), titles


async def test_two_team_members_accept_at_once_and_two_of_a_unit_confirm_at_once(
    app: App, backend: str
) -> None:
    """周静 and 赵刚 (both on the team) press 同意企业时间 at once: it is accepted once and the
    enterprise told once; 邓伟 and 曹琳 (国土规划局) confirm at once: one is recorded."""
    set_clock(app, NOW)
    enterprise = Chat(app.router, "ent")
    project_id = await key_project(app, enterprise)
    zhao, zhou = await bind_staff(app, "赵刚"), await bind_staff(app, "周静")
    deng, cao = await bind_staff(app, "邓伟"), await bind_staff(app, "曹琳")
    rounds = 10 if backend == "production" else 2
    for day in range(rounds):
        when = dt.date(2026, 12, 8) + dt.timedelta(days=day)
        if when.weekday() >= 5:
            continue
        await zhao.say(f"/visit {project_id} | {when} 10:00 | 麓谷大道 1 号 | 国土规划局")
        number = "SF-" + zhao.text.split("SF-")[1][:6]
        await enterprise.press_data(f"sv:other:{number}")
        await enterprise.say(f"{when} 15:00")
        assert "转告服务团队" in enterprise.text
        await asyncio.gather(
            zhao.press_data(f"sv:accept:{number}"), zhou.press_data(f"sv:accept:{number}")
        )
        texts = [zhao.text, zhou.text]
        assert sum("已按企业希望的时间确认" in t for t in texts) == 1, texts
        assert sum("无需重复操作" in t for t in texts) == 1, texts
        told = [n for n in await notices_to(app, enterprise) if number in n.text]
        assert sum("已同意您提出的时间" in n.text for n in told) == 1
        await asyncio.gather(
            deng.press_data(f"sv:unit:{number}"), cao.press_data(f"sv:unit:{number}")
        )
        assert sorted("已确认贵单位" in c.text for c in (deng, cao)) == [False, True]
        async with app.services.db.sessions() as session:
            unit = await session.scalar(select(VisitUnit).join(Visit).where(Visit.number == number))
        assert unit is not None and unit.confirmed_by is not None
