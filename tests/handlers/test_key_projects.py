"""重点项目: records from key cases, 先行介入 by 产业促进局, the four-level ladder, 回访."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from bot.app import App
from domain.key_projects import KeyProjectLimits, escalate_problems, remind_follow_ups
from storage import key_projects
from storage.models import Case, KeyProject, OutboxMessage, Problem, Staff
from support import Chat, bind_staff, fill_application, notices_to

NEW = "/kp_new 星城智造产业园二期 | 湖南星城智造科技有限公司"
CST = dt.timezone(dt.timedelta(hours=8))


def changsha(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CST)


async def notices(app: App, key_prefix: str) -> list[OutboxMessage]:
    async with app.services.db.sessions() as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.idempotency_key.like(f"{key_prefix}%"))
            .order_by(OutboxMessage.id)
        )
        return list((await session.scalars(query)).all())


async def the_project(app: App) -> KeyProject:
    async with app.services.db.sessions() as session:
        (project,) = list(await session.scalars(select(KeyProject)))
        loaded = await key_projects.get(session, project.id)
    assert loaded is not None
    return loaded


async def team_names(app: App, project_id: int) -> list[str]:
    async with app.services.db.sessions() as session:
        return [s.name for s in await key_projects.team(session, project_id)]


async def the_problem(app: App) -> Problem:
    async with app.services.db.sessions() as session:
        (problem,) = list(await session.scalars(select(Problem)))
    return problem


async def raise_problem(chat: Chat, project_id: int, text: str) -> None:
    await chat.press_data(f"k:view:{project_id}")
    await chat.press("反映问题")
    assert "请描述" in chat.text
    await chat.say(text)
    assert "已登记" in chat.text


async def test_key_case_becomes_a_key_project_with_the_promotion_team(app: App) -> None:
    enterprise = Chat(app.router, "ent")
    await fill_application(enterprise, kind="重点产业项目")
    await enterprise.press("提交")
    async with app.services.db.transaction() as session:
        case = await session.scalar(select(Case))
        assert case is not None and case.project_kind == "key"
        first = await key_projects.create_for_case(session, case)
        again = await key_projects.create_for_case(session, case)
    assert first.id == again.id
    project = await the_project(app)
    assert (project.name, project.company) == ("星城智造产业园一期", "湖南星城智造科技有限公司")
    assert project.stage == "applied" and project.case_id == case.id
    assert sorted(await team_names(app, project.id)) == sorted(["周静", "赵刚"])
    zhao = await bind_staff(app, "赵刚", "zhao")
    await zhao.say("/kp")
    assert "星城智造产业园一期" in zhao.text and "已申请" in zhao.text
    await zhao.press("星城智造产业园一期")
    assert case.number in zhao.text and "周静（政务服务中心）" in zhao.text
    assert "（尚未制订）" in zhao.text


async def test_negotiation_project_is_recorded_by_industry_promotion_only(app: App) -> None:
    zhao = await bind_staff(app, "赵刚", "zhao")
    sun = await bind_staff(app, "孙悦", "sun")  # 产业促进局 specialist
    feng = await bind_staff(app, "冯雪", "feng")  # 财政局 specialist
    enterprise = Chat(app.router, "ent")
    await enterprise.say(NEW)
    assert "产业促进局录入" in enterprise.text
    await feng.say(NEW)
    assert "产业促进局录入" in feng.text
    await sun.say("/kp_new 只有项目名称")
    assert "用法" in sun.text
    async with app.services.db.sessions() as session:
        assert list(await session.scalars(select(KeyProject))) == []
    await sun.say(NEW)
    assert "已录入重点项目" in sun.text and "洽谈中" in sun.text
    project = await the_project(app)
    assert project.stage == "negotiating" and project.case_id is None
    assert sorted(await team_names(app, project.id)) == sorted(["周静", "赵刚", "孙悦"])
    (joined,) = await notices_to(app, zhao)
    assert "推进团队" in joined.text and "孙悦" in joined.text
    assert await notices_to(app, sun) == []
    await feng.say("/kp")
    assert "没有您参与" in feng.text
    admin = await bind_staff(app, "陈晨", "chen")
    await admin.say("/kp")
    assert "星城智造产业园二期" in admin.text


async def test_problem_climbs_the_ladder_once_per_level_across_the_holiday(app: App) -> None:
    chats = {
        name: await bind_staff(app, name, chat_id)
        for name, chat_id in [
            ("孙悦", "sun"),
            ("赵刚", "zhao"),
            ("周静", "zhou"),
            ("许芳", "xu"),
            ("何军", "he"),
            ("陈晨", "chen"),
            ("刘洋", "liu"),
            ("冯雪", "feng"),
        ]
    }
    sun = chats["孙悦"]
    await sun.say(NEW)
    project = await the_project(app)
    await sun.say(f"/kp_add {project.id} 许芳")  # 住建环保局 joins the team
    assert "已将 许芳" in sun.text
    await raise_problem(sun, project.id, "施工许可所需的消防设计审查意见迟迟未出")
    problem = await the_problem(app)
    level_1 = {n.chat_id for n in await notices(app, f"problem:{problem.id}:level:1:")}
    assert level_1 == {"zhao", "zhou", "xu"}  # the team, but not who raised it

    raised = changsha(2026, 9, 30, 10, 0)  # Wednesday before the National Day holiday
    async with app.services.db.transaction() as session:
        await session.execute(update(Problem).values(raised_at=raised, level_since=raised))
    limits = KeyProjectLimits(problem_workdays=2)

    async def tick(year: int, month: int, day: int, hour: int, minute: int) -> int:
        moment = changsha(year, month, day, hour, minute)
        return await escalate_problems(app.services, moment, limits)

    async def notified(level: int) -> set[str]:
        return {n.chat_id for n in await notices(app, f"problem:{problem.id}:level:{level}:")}

    # 10-01 … 10-07 are holidays: two working days after Wed 10:00 is Fri 10-09 10:00.
    assert await tick(2026, 10, 7, 12, 0) == 0
    assert await tick(2026, 10, 9, 9, 59) == 0
    assert await tick(2026, 10, 9, 10, 0) == 3
    assert await notified(2) == {"zhao", "zhou", "he"}  # chiefs of the team's units
    assert await tick(2026, 10, 9, 10, 30) == 0  # once
    # Saturday 10-10 is a make-up working day (调休), Sunday 10-11 is not.
    assert await tick(2026, 10, 11, 23, 0) == 0
    assert await tick(2026, 10, 12, 10, 0) == 3
    assert await notified(3) == {"zhao", "zhou", "chen"}  # 联席会议
    assert await tick(2026, 10, 13, 10, 0) == 0
    assert await tick(2026, 10, 14, 10, 0) == 1
    assert await notified(4) == {"liu"}  # 委领导专题会议
    assert await tick(2026, 10, 30, 10, 0) == 0
    assert (await the_problem(app)).level == 4
    escalation = (await notices(app, f"problem:{problem.id}:level:4:"))[0]
    assert "委领导专题会议" in escalation.text and "2 个工作日" in escalation.text
    assert await notices_to(app, chats["冯雪"]) == []
    # The leader it reached may resolve it; the team hears of it.
    liu = chats["刘洋"]
    await liu.press_data(escalation.buttons[0][-1]["data"])
    assert "已标记为解决" in liu.text
    resolved = {n.chat_id for n in await notices(app, f"problem:{problem.id}:resolved:")}
    assert resolved == {"sun", "zhao", "zhou", "xu", "he", "chen"}
    assert await tick(2026, 11, 30, 10, 0) == 0


async def test_manual_escalation_goes_one_level_at_a_time(app: App) -> None:
    sun = await bind_staff(app, "孙悦", "sun")
    zhao = await bind_staff(app, "赵刚", "zhao")
    zhou = await bind_staff(app, "周静", "zhou")
    chen = await bind_staff(app, "陈晨", "chen")
    liu = await bind_staff(app, "刘洋", "liu")
    await sun.say(NEW)
    project = await the_project(app)
    await raise_problem(sun, project.id, "用地规划条件需要调整")
    problem = await the_problem(app)
    (notice,) = [n for n in await notices_to(app, zhao) if "新问题" in n.text]
    labels = [b["label"] for row in notice.buttons for b in row]
    assert labels == [f"升级 #{problem.id}", f"解决 #{problem.id}"]

    await zhao.press_data(notice.buttons[0][0]["data"])
    assert "第2级" in zhao.text and "周静" in zhao.text
    assert {n.chat_id for n in await notices(app, f"problem:{problem.id}:level:2:")} == {"zhou"}
    await zhao.press_data(f"k:up:{problem.id}")
    assert "第3级" in zhao.text
    level_3 = {n.chat_id for n in await notices(app, f"problem:{problem.id}:level:3:")}
    assert level_3 == {"zhou", "chen"}
    await zhou.press_data(f"k:up:{problem.id}")
    assert "第4级" in zhou.text and "刘洋" in zhou.text
    await zhou.press_data(f"k:up:{problem.id}")
    assert "最高层级" in zhou.text
    assert (await the_problem(app)).level == 4
    await chen.press_data(f"k:solve:{problem.id}")
    assert "已标记为解决" in chen.text
    await liu.press_data(f"k:solve:{problem.id}")
    assert "已经解决" in liu.text
    assert (await the_problem(app)).status == "resolved"


async def test_forged_and_stale_buttons_change_nothing(app: App) -> None:
    sun = await bind_staff(app, "孙悦", "sun")
    feng = await bind_staff(app, "冯雪", "feng")
    liu = await bind_staff(app, "刘洋", "liu")
    enterprise = Chat(app.router, "ent")
    await sun.say(NEW)
    project = await the_project(app)
    await raise_problem(sun, project.id, "环评批复需要加快")
    problem = await the_problem(app)
    pid = project.id
    for data in (f"k:view:{pid}", f"k:plan:{pid}", f"k:stageto:{pid}:done", f"k:contactn:{pid}:5"):
        await feng.press_data(data)
        assert "未找到该重点项目" in feng.text, data
    for data in (f"k:up:{problem.id}", f"k:solve:{problem.id}"):
        await feng.press_data(data)
        assert "不由您协调" in feng.text
        await liu.press_data(data)  # the leader before the problem reached level 4
        assert "不由您协调" in liu.text
    await feng.say(f"/kp_add {pid} 冯雪")
    assert "未找到该重点项目" in feng.text
    await enterprise.press_data(f"k:view:{pid}")
    assert "没有执行该操作的权限" in enterprise.text
    await enterprise.say("/kp")
    assert "没有执行该操作的权限" in enterprise.text
    await sun.press_data(f"k:contactn:{pid}:999")
    assert "已过期" in sun.text
    await sun.press_data(f"k:stageto:{pid}:bogus")
    assert "已过期" in sun.text
    await sun.press_data("k:view:abc")
    assert "已过期" in sun.text
    project = await the_project(app)
    assert project.stage == "negotiating" and project.service_plan is None
    assert project.last_contact_at is None
    assert (await the_problem(app)).level == 1
    assert sorted(await team_names(app, pid)) == sorted(["周静", "赵刚", "孙悦"])


async def test_plan_milestones_stage_and_follow_up_reminders(app: App) -> None:
    sun = await bind_staff(app, "孙悦", "sun")
    await bind_staff(app, "赵刚", "zhao")
    await sun.say(NEW)
    project = await the_project(app)
    await sun.press("代办方案")
    await sun.say("并联办理施工许可与消防审查；<b>告知承诺制</b>办理环评。")
    assert "代办方案已保存" in sun.text and "&lt;b&gt;告知承诺制" in sun.text
    await sun.press("添加节点")
    await sun.say("取得施工许可 | 2026-13-01")
    assert "没能识别" in sun.text
    await sun.say("取得施工许可 | 2026-12-31")
    assert "已添加推进节点" in sun.text and "2026-12-31" in sun.text
    await sun.press("完成：取得施工许可")
    assert "已完成" in sun.text and "✅ 取得施工许可" in sun.text
    await sun.press("调整阶段")
    await sun.press("已签约")
    assert "已签约" in sun.text
    await sun.press("记录联系")
    await sun.press("10个工作日后回访")
    assert "已记录本次联系" in sun.text
    project = await the_project(app)
    assert project.stage == "signed" and project.last_contact_at is not None
    assert project.next_follow_up_at is not None
    assert project.next_follow_up_at - project.last_contact_at >= dt.timedelta(days=12)

    due = changsha(2026, 10, 9, 10, 0)
    async with app.services.db.transaction() as session:
        await session.execute(
            update(KeyProject).values(next_follow_up_at=due, follow_up_reminded_at=None)
        )
    assert await remind_follow_ups(app.services, due - dt.timedelta(minutes=1)) == 0
    assert await remind_follow_ups(app.services, due + dt.timedelta(minutes=1)) == 2
    assert await remind_follow_ups(app.services, due + dt.timedelta(hours=5)) == 0  # once
    reminders = await notices(app, f"key_project:{project.id}:follow_up:")
    assert {n.chat_id for n in reminders} == {"sun", "zhao"}
    assert "定期回访" in reminders[0].text
    # A project recorded without a date gets its first one; a later date reminds again.
    async with app.services.db.transaction() as session:
        await session.execute(update(KeyProject).values(next_follow_up_at=None))
    assert await remind_follow_ups(app.services, due) == 0
    project = await the_project(app)
    assert project.next_follow_up_at is not None
    later = project.next_follow_up_at + dt.timedelta(minutes=1)
    assert await remind_follow_ups(app.services, later) == 2


async def test_ledger_is_for_the_lead_units_and_admins(app: App) -> None:
    sun = await bind_staff(app, "孙悦", "sun")
    feng = await bind_staff(app, "冯雪", "feng")
    await sun.say(NEW)
    await sun.say("/ledger")
    (reply,) = sun.replies
    assert reply.document is not None and reply.document.name.endswith(".xlsx")
    assert "共 1 个项目" in reply.text
    await feng.say("/ledger")
    assert feng.replies[0].document is None and "没有执行该操作的权限" in feng.text
    async with app.services.db.sessions() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == "冯雪"))
    assert staff is not None
