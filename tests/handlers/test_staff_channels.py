"""A staff member bound on Telegram (here the test channel) and signed in on the web: each
notice reaches each channel once; binding a browser never unbinds the other channel."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.app import App
from storage import questions, staff_devices
from storage.models import OutboxMessage, Staff
from support import Chat, bind_staff

WEB = "web"
QUESTION = "我们厂区门口的路灯坏了好几天，能不能帮忙反映一下"


async def sign_in_browser(app: App, name: str) -> tuple[Staff, int]:
    async with app.services.db.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == name))
        assert staff is not None
        device = await staff_devices.bind(session, staff, dt.timedelta(days=30), "Chromium")
        return staff, device.id


async def rows_with(app: App, text: str) -> list[tuple[str, str]]:
    async with app.services.db.sessions() as session:
        rows = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(r.channel, r.chat_id) for r in rows if text in r.text]


async def test_each_notice_once_per_bound_channel(app: App) -> None:
    await bind_staff(app, "李娜", "li")
    li, _ = await sign_in_browser(app, "李娜")
    await sign_in_browser(app, "李娜")  # a second browser: still one web chat
    await Chat(app.router, "ent").say(QUESTION)
    assert sorted(await rows_with(app, "路灯")) == [("test", "li"), (WEB, f"staff-{li.id}")]

    # Bound again on the other channel: the browser stays signed in.
    await bind_staff(app, "李娜", "li2")
    async with app.services.db.sessions() as session:
        again = await session.get(Staff, li.id)
        assert again is not None and again.web_chat_id == f"staff-{li.id}"


async def test_revoking_every_browser_stops_web_notices_only(app: App) -> None:
    await bind_staff(app, "李娜", "li")
    li, device = await sign_in_browser(app, "李娜")
    async with app.services.db.transaction() as session:
        assert await staff_devices.revoke(session, li.id, device)
    await Chat(app.router, "ent").say(QUESTION)
    assert await rows_with(app, "路灯") == [("test", "li")]


async def test_staff_signed_in_only_on_the_web_is_reached_and_recognised(app: App) -> None:
    li, device = await sign_in_browser(app, "李娜")
    await Chat(app.router, "ent").say(QUESTION)  # the only reachable window staff member
    assert await rows_with(app, "路灯") == [(WEB, f"staff-{li.id}")]
    browser = Chat(app.router, f"staff-{li.id}", channel=WEB)
    await browser.say("/start")
    assert "李娜" in browser.text
    async with app.services.db.transaction() as session:
        await staff_devices.revoke(session, li.id, device)
    await browser.say("/inbox")
    assert "李娜" not in browser.text and "BDB-" not in browser.text


async def test_admin_lists_and_revokes_browsers_in_the_chat(app: App) -> None:
    admin = await bind_staff(app, "陈晨")
    li, device = await sign_in_browser(app, "李娜")
    window = await bind_staff(app, "王磊")
    await window.say("/devices 李娜")
    assert "不能" in window.text or "权限" in window.text
    await admin.say("/devices 李娜")
    assert f"#{device}" in admin.text and "Chromium" in admin.text
    await admin.press("注销")
    assert "已注销" in admin.text
    await admin.press_data(f"v:revoke:{li.id}:{device}")  # pressed twice
    assert "未找到" in admin.text
    await admin.say("/devices 李娜")
    assert "暂无" in admin.text
    async with app.services.db.sessions() as session:
        assert await questions.staff(session, li.id) is not None
        assert await staff_devices.listing(session, li.id) == []
