"""The enterprise's menu and case views, on both backends."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.app import App
from storage.models import Case, CaseEvent, OutboxMessage
from storage.state import RedisStateStore
from support import Chat, bind_staff, fill_application


async def submitted_case(chat: Chat) -> str:
    await fill_application(chat)
    await chat.press("提交")
    return str(re.search(r"BDB-\d{4}-\d{6}", chat.text).group(0))  # type: ignore[union-attr]


async def test_start_greets_with_the_menu(chat: Chat) -> None:
    await chat.say("/start")
    assert "免费" in chat.text and "帮代办" in chat.text
    labels = [b.label for b in chat.buttons]
    assert labels == ["我要咨询", "申请帮代办", "我的申请", "联系我们", "预约洽谈", "订阅政策公告"]


async def test_contacts_show_the_roster_from_the_database(chat: Chat) -> None:
    await chat.say("/start")
    await chat.press("联系我们")
    for unit in ("政务服务中心", "产业促进局", "经济发展局", "财政局", "住建环保局", "国土规划局"):
        assert unit in chat.text
    assert "首席责任人 周静" in chat.text


async def test_subscription_toggles(chat: Chat) -> None:
    await chat.say("/start")
    await chat.press("订阅政策公告")
    assert "已为您订阅" in chat.text
    assert chat.button("退订政策公告")
    await chat.press("退订政策公告")
    assert "已退订" in chat.text


async def test_cases_list_and_timeline(app: App, chat: Chat) -> None:
    await chat.say("/cases")
    assert "还没有提交过" in chat.text
    number = await submitted_case(chat)
    await chat.say("/cases")
    assert number in chat.text and "已提交" in chat.text
    await chat.press(f"查看 {number}")
    assert "提交申请" in chat.text and "建筑工程施工许可证" in chat.text
    await chat.say(f"/status {number.lower()}")
    assert number in chat.text and "当前状态" in chat.text


async def test_someone_elses_case_and_forged_numbers_look_the_same(app: App, chat: Chat) -> None:
    number = await submitted_case(chat)
    stranger = Chat(app.router, "stranger")
    for attempt in (f"/status {number}", "/status BDB-2026-999999", "/status ../../etc"):
        await stranger.say(attempt)
        assert "未找到该申请" in stranger.text
        assert number not in stranger.text
    for data in (f"c:open:{number}", f"c:withdraw_yes:{number}", f"c:form:{number}", "c:zzz:1"):
        await stranger.press_data(data)
        assert "未找到该申请" in stranger.text or "该操作已过期" in stranger.text
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
    assert case is not None and case.status == "submitted"


async def test_withdraw_asks_first_then_records_the_event(app: App, chat: Chat) -> None:
    number = await submitted_case(chat)
    await chat.press_data(f"c:open:{number}")
    await chat.press("撤回申请")
    assert "确定要撤回" in chat.text
    await chat.press("确认撤回")
    assert "已撤回" in chat.text
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        events = list(await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)))
    assert case.status == "withdrawn"
    assert [e.to_status for e in events] == ["submitted", "withdrawn"]
    await chat.press_data(f"c:withdraw_yes:{number}")
    assert "不能撤回" in chat.text


async def test_form_download_on_request(app: App, chat: Chat) -> None:
    number = await submitted_case(chat)
    await chat.press_data(f"c:form:{number}")
    names = [r.document.name for r in chat.replies if r.document is not None]
    assert any(name.endswith(".docx") and number in name for name in names)


async def test_unsupported_content_and_empty_text_keep_the_dialog(app: App, chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("重点产业项目")
    await chat.send_other()
    assert "暂时只能识别" in chat.text
    await chat.say("   ")
    assert "没有收到内容" in chat.text
    await chat.say("湖南某某科技有限公司")
    assert "第 3/" in chat.text


async def test_redis_outage_says_busy_and_recovers(app: App, chat: Chat) -> None:
    state = app.services.state
    if not isinstance(state, RedisStateStore):
        return  # the memory store cannot be unreachable
    await chat.say("/apply")
    await chat.press("重点产业项目")
    working = state.redis
    state.redis = type(working).from_url("redis://127.0.0.1:1/0")
    await chat.say("湖南某某科技有限公司")
    assert chat.text == "系统繁忙，请稍后再试。"
    await state.redis.aclose()
    state.redis = working
    await chat.say("湖南某某科技有限公司")
    assert "第 3/" in chat.text
    async with app.services.db.sessions() as session:
        assert list(await session.scalars(select(OutboxMessage))) == []


async def test_help_differs_for_enterprises_and_staff(app: App, chat: Chat) -> None:
    await chat.say("/help")
    assert "/apply" in chat.text and "工作人员" not in chat.text
    admin = await bind_staff(app, "陈晨")
    await admin.say("/help")
    assert "工作人员指令" in admin.text and "/broadcast" in admin.text
    window = await bind_staff(app, "李娜")
    await window.say("/help")
    assert "/inbox" in window.text and "/broadcast" not in window.text
