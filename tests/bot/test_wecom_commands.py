"""`bangdaiban wecom sync|menu|status` against the WeCom stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update
from test_wecom_e2e import give_userid, wecom_settings
from wecom_stub import WeComStub

from bot.app import App
from bot.channels.wecom import command_api
from bot.channels.wecom.commands import mobile_of, status_lines, sync
from bot.channels.wecom.menu import app_menu
from storage.models import OutboxMessage, OutboxStatus, Staff, utcnow


@pytest.fixture
async def stub() -> AsyncIterator[WeComStub]:
    api = WeComStub()
    await api.server.start_server()
    yield api
    await api.server.close()


async def set_phone(app: App, name: str, phone: str) -> None:
    async with app.services.db.transaction() as session:
        await session.execute(update(Staff).where(Staff.name == name).values(phone=phone))


def test_only_mainland_mobile_numbers_are_looked_up() -> None:
    assert mobile_of("138 0013 8000") == "13800138000"
    assert mobile_of("+86 139-0000-1111") == "13900001111"
    assert mobile_of("0731-88880102") is None and mobile_of(None) is None


async def test_sync_matches_by_mobile_and_lists_whom_it_could_not(
    app: App, stub: WeComStub
) -> None:
    await set_phone(app, "李娜", "13800138000")
    await set_phone(app, "王磊", "13900001111")  # not a member of the company's WeCom
    await give_userid(app, "陈晨", "ChenChen")  # already known: not looked up
    stub.mobiles = {"13800138000": "LiNa"}
    settings = wecom_settings(app, stub)
    async with command_api(settings) as api:
        result = await sync(app.services.db, api)
    assert result.matched == [("李娜", "LiNa")]
    unmatched = dict(result.unmatched)
    assert unmatched["王磊"] == "no WeCom member with this mobile"
    assert unmatched["周静"] == "no mobile number in the roster"
    assert "陈晨" not in unmatched
    async with app.services.db.sessions() as session:
        li = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert li is not None and li.wecom_userid == "LiNa"


async def test_menu_opens_desk_through_wecom_oauth(app: App, stub: WeComStub) -> None:
    settings = wecom_settings(app, stub)
    async with command_api(settings) as api:
        await api.create_menu(app_menu(settings))
    ((entry,),) = [menu["button"] for menu in stub.menus]
    assert entry["name"] == "待办事项" and entry["type"] == "view"
    query = parse_qs(urlsplit(entry["url"]).query)
    assert query["redirect_uri"] == ["https://bdb.example.gov.cn/wecom/oauth"]
    assert query["scope"] == ["snsapi_base"] and query["agentid"] == ["1000002"]


async def test_status_shows_bound_unreachable_and_sends_of_the_last_day(app: App) -> None:
    li = await give_userid(app, "李娜", "LiNa")
    await give_userid(app, "王磊", "WangLei")
    async with app.services.db.transaction() as session:
        await session.execute(
            update(Staff).where(Staff.name == "王磊").values(wecom_unreachable=True)
        )
        for index in range(2):
            session.add(
                OutboxMessage(
                    idempotency_key=f"status-test:{index}",
                    channel="wecom",
                    chat_id="LiNa",
                    text="x",
                    buttons=[],
                    status=OutboxStatus.SENT,
                    sent_at=utcnow(),
                )
            )
    lines = await status_lines(app.services.db)
    assert lines[0].startswith("bound 2 of ") and "reachable 1, unreachable (81013) 1" in lines[0]
    assert "sent in the last day 2" in lines[0]
    (li_line,) = [line for line in lines if line.strip().startswith(li.name)]
    assert "LiNa\treachable\tsent 24h: 2" in li_line
    assert any("WangLei\tUNREACHABLE" in line for line in lines)
