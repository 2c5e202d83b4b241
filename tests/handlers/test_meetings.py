"""联席会议 end to end on both backends: called in a room (its slots held like bookings),
agenda from a level-3 problem, units invited through the outbox, chiefs confirm who attends,
/appointments, reminders, 会议纪要, and each decision an update on the ladder — each notice
once. On PostgreSQL, two callers take one room slot at once: one meeting."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

from sqlalchemy import select

from bot.app import App
from domain.bookings import free_slots
from domain.meetings import remind_meetings
from services.workdays import CHINA
from storage.models import Meeting, MeetingUnit, OutboxMessage, Problem
from support import Chat, bind_staff, notices_to

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)  # a Monday morning


def set_clock(app: App, moment: dt.datetime) -> None:
    app.services.clock = lambda: moment.astimezone(dt.UTC)


async def problems(app: App) -> list[Problem]:
    async with app.services.db.sessions() as session:
        return list(await session.scalars(select(Problem).order_by(Problem.id)))


async def two_problems(zhao: Chat) -> None:
    await zhao.say("/kp_new 星城智造产业园 | 湖南星城智造科技有限公司")
    for text in ("用地指标不足，需协调", "环评批复时限紧"):
        await zhao.press("反映问题")
        await zhao.say(text)


async def test_joint_meeting_invitation_confirmation_minutes_and_decisions(app: App) -> None:
    set_clock(app, NOW)
    zhao, zhou = await bind_staff(app, "赵刚"), await bind_staff(app, "周静")
    await two_problems(zhao)
    first, second = await problems(app)
    for problem in (first, second):
        await zhao.press_data(f"k:up:{problem.id}")  # L2
        await zhou.press_data(f"k:up:{problem.id}")  # L3 联席会议
    assert [p.level for p in await problems(app)] == [3, 3]

    chen = await bind_staff(app, "陈晨")  # administrator, 政务服务中心
    deng = await bind_staff(app, "邓伟")  # chief, 国土规划局
    await deng.say("/meeting 2026-12-10 09:00 | 对接洽谈室1 | 2")
    assert "无权" in deng.text  # not a lead unit
    await chen.say("/meeting 2026-12-10 09:00 | 对接洽谈室9 | 2")
    assert "请按以下格式" in chen.text
    await chen.say("/meeting 2026-12-10 11:00 | 对接洽谈室1 | 2")
    assert "没有足够的连续时段" in chen.text  # 12:00 is lunch
    await chen.say("/meeting 2026-12-10 09:00 | 对接洽谈室1 | 2")
    assert "联席会议 LX-000001" in chen.text.replace("<b>", "").replace("</b>", "")
    async with app.services.db.sessions() as session:
        free = await free_slots(session, [dt.date(2026, 12, 10)], NOW, app.services.bookings)
    held = {(s.room_name, f"{s.local:%H:%M}") for s in free}
    assert ("对接洽谈室1", "09:00") not in held and ("对接洽谈室1", "10:00") not in held
    assert ("对接洽谈室2", "09:00") in held  # enterprises can still book the other room

    await chen.press(f"☐ L3 #{first.id}")
    await chen.press(f"☐ L3 #{second.id}")
    await chen.press("☐ 国土规划局")
    assert "用地指标不足" in chen.text and "国土规划局" in chen.text
    await chen.press_data("jm:t:LX-000001:p:999999")  # a forged id is refused
    assert "已过期" in chen.text
    await chen.press_data("jm:t:LX-000001:u:999999")
    await chen.press_data("jm:send:LX-000001")
    assert "已向 3 位首席责任人发出" in chen.text
    await chen.press_data("jm:send:LX-000001")
    assert "已发出通知" in chen.text
    (invitation,) = [n for n in await notices_to(app, deng) if "联席会议通知" in n.text]
    assert "用地指标不足" in invitation.text and "2026-12-10 09:00" in invitation.text
    cao = await bind_staff(app, "曹琳")  # a specialist cannot confirm for the unit
    await cao.press_data(invitation.buttons[0][0]["data"])
    assert "无权" in cao.text
    await deng.press_data(invitation.buttons[0][0]["data"])
    await deng.say("邓伟、曹琳")
    assert "已确认贵单位参加" in deng.text
    await deng.press_data(invitation.buttons[0][0]["data"])
    await deng.say("邓伟")
    assert "无需重复确认" in deng.text
    await deng.say("/appointments week")
    assert "LX-000001" in deng.text and "国土规划局（邓伟、曹琳）" in deng.text

    async def tick(moment: dt.datetime) -> int:
        return await remind_meetings(app.services, moment.astimezone(dt.UTC))

    assert await tick(dt.datetime(2026, 12, 9, 16, 0, tzinfo=CHINA)) == 2  # 陈晨, 邓伟
    assert await tick(dt.datetime(2026, 12, 9, 16, 1, tzinfo=CHINA)) == 0
    assert await tick(dt.datetime(2026, 12, 10, 8, 0, tzinfo=CHINA)) == 2

    set_clock(app, dt.datetime(2026, 12, 10, 11, 30, tzinfo=CHINA))
    leader = await bind_staff(app, "刘洋")  # told when a problem reaches L4
    await chen.say("/minutes LX-000001")
    await chen.say("一、用地指标由国土规划局牵头协调；二、环评问题提请委领导专题会议。")
    assert "已记录联席会议 LX-000001 的会议纪要" in chen.text
    await chen.press(f"交办 #{first.id}")
    await chen.say("协调用地指标 | 火星人 | 2026-12-20")
    assert "未找到工作人员" in chen.text
    await chen.say("协调用地指标 | 邓伟 | 2026-12-20")
    assert "已交办新问题" in chen.text and "邓伟" in chen.text
    await chen.press(f"提交委领导专题会议 #{second.id}")
    assert "第四级" in chen.text
    await chen.press_data("jm:d:1:resolved")  # the first agenda item, decided already
    assert "已作出决定" in chen.text

    old_first, old_second, task = await problems(app)
    assert old_first.status == "resolved" and old_second.level == 4
    assert task.level == 1 and task.status == "open" and task.due_on == dt.date(2026, 12, 20)
    assert task.text == "协调用地指标" and task.owner_id is not None
    async with app.services.db.sessions() as session:
        keys = list(await session.scalars(select(OutboxMessage.idempotency_key)))
        meeting = await session.scalar(select(Meeting))
        units = list(await session.scalars(select(MeetingUnit)))
    assert (
        meeting is not None and meeting.status == "held" and "牵头协调" in (meeting.minutes or "")
    )
    assert [u.attendees for u in units if u.attendees] == ["邓伟、曹琳"]
    assert all(n == 1 for n in Counter(keys).values())
    assert any(k.startswith(f"problem:{old_second.id}:level:4") for k in keys)
    assert any(k.startswith(f"problem:{task.id}:level:1") for k in keys)
    minutes = [n for n in await notices_to(app, deng) if "会议纪要" in n.text]
    assert len(minutes) == 1
    assert [n for n in await notices_to(app, leader) if "环评批复时限紧" in n.text]
    (handed,) = [n for n in await notices_to(app, deng) if "联席会议交办" in n.text]
    assert "2026-12-20" in handed.text


async def test_two_callers_take_one_room_slot_at_once_one_meeting(app: App, backend: str) -> None:
    set_clock(app, NOW)
    chen, zhou = await bind_staff(app, "陈晨"), await bind_staff(app, "周静")
    rounds = 8 if backend == "production" else 2
    for day in range(rounds):
        when = dt.date(2026, 12, 8) + dt.timedelta(days=day)
        if when.weekday() >= 5:
            continue
        command = f"/meeting {when} 14:30 | 对接洽谈室2 | 2"
        await asyncio.gather(chen.say(command), zhou.say(command))
        texts = [chen.text, zhou.text]
        assert sum("（草稿）" in t for t in texts) == 1, texts
        assert sum("已被预约或占用" in t for t in texts) == 1, texts
    async with app.services.db.sessions() as session:
        count = len(list(await session.scalars(select(Meeting))))
    assert count == sum(
        1 for d in range(rounds) if (dt.date(2026, 12, 8) + dt.timedelta(days=d)).weekday() < 5
    )
