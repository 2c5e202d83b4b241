"""Nothing a person should see is lost, end to end through the Bot API stub, which refuses
what Telegram refuses (over 4,096 characters, malformed HTML)."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from bot.app import App
from botapi_stub import BotApiStub, Call, bad_request
from storage import applicants, cases, outbox, questions
from storage.cases import ApplicationData
from storage.models import OutboxMessage, Staff
from storage.outbox import Recipient
from tgchat import TgUser, stub_server, telegram, until_sent

APPLICANT, WINDOW = 601, 602
OPINION = "经办意见" + "材料齐全，符合受理条件。" * 332  # 4,000 characters, the most one may type
MISSING = ["补正一：" + "请提供施工合同原件扫描件。" * 300, "补正二：" + "请补充规划许可证。" * 390]


def visible(calls: list[Call]) -> str:
    """What the person read, markup removed, messages in order."""
    return "".join(html.unescape(re.sub(r"<[^>]*>", "", c.text)) for c in calls)


async def pending(app: App) -> int:
    async with app.services.db.sessions() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending"))
        return len(rows.all())


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    async with stub_server() as server:
        yield server


async def case_and_window(app: App) -> tuple[str, str]:
    data = ApplicationData(
        project_kind="general",
        company="湖南长文本科技有限公司",
        credit_code=None,
        project_name="长文本测试项目",
        project_code=None,
        contact_name="李雷",
        contact_phone="+8613900001111",
        project_summary="项目简介" * 250,
        item_codes=("construction_permit",),
        other_items=None,
    )
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "telegram", str(APPLICANT))
        case = await cases.create(session, applicant.id, data, "long-1")
        staff = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert staff is not None
        code = await questions.create_invite(session, staff.id, dt.timedelta(hours=1))
    return case.number, code


async def test_long_texts_and_refused_messages_all_reach_the_reader(
    app: App, stub: BotApiStub
) -> None:
    number, code = await case_and_window(app)
    async with telegram(app, stub, run_worker=True) as (service, handled):
        window = TgUser(stub, handled, WINDOW)
        applicant = TgUser(stub, handled, APPLICANT)
        (bound,) = await window.say(f"/bind {code}")
        at = int(bound.params["message_id"])
        await window.press_data(at, f"w:accept:{number}")
        await window.say(OPINION)  # the case screen now carries 4,000 characters of opinion
        assert len(window.last) >= 3 and OPINION in visible(window.last)
        await window.press_data(at, f"w:start:{number}")
        for missing in MISSING:  # two long 补正 requests, then the applicant's /status
            await window.press_data(at, f"w:supp:{number}")
            await window.say(missing)
            await window.press_data(at, f"w:resume:{number}")
        await until_sent(stub, APPLICANT, "sendMessage", 5)
        notices = visible(stub.sent(APPLICANT))
        assert all(m in notices for m in MISSING)
        await applicant.say(f"/status {number}")
        assert len(applicant.last) >= 2 and all(m in visible(applicant.last) for m in MISSING)

        # Rows the stub will refuse: malformed HTML, and a legacy row over the limit.
        async with app.services.db.transaction() as session:
            target = Recipient("telegram", str(APPLICANT))
            outbox.enqueue(session, target, "<b>未闭合的标签 & 特殊字符", key="bad:html")
            outbox.enqueue(session, target, "旧通知" * 2000, key="bad:long")
        await stub.wait_until(lambda: "旧通知" * 2000 in visible(stub.sent(APPLICANT)), 20)
        assert "未闭合的标签 & 特殊字符旧通知" in visible(stub.sent(APPLICANT))  # in order
        for _ in range(200):  # the worker records its batch just after the sends
            if not await pending(app):
                break
            await asyncio.sleep(0.05)
        assert service.delivery is not None
        assert service.delivery.workers["telegram"].fallbacks == 2
    assert stub.refused_text == 2  # only the two planted rows, each once
    async with app.services.db.sessions() as session:
        statuses = set((await session.scalars(select(OutboxMessage.status))).all())
    assert statuses == {"sent"}
    assert all(len(c.text) <= 4096 for c in stub.sent())


async def test_a_refused_reply_is_shown_as_plain_text(app: App, stub: BotApiStub) -> None:
    labels = {"channel": "telegram", "source": "reply", "instead": "plain"}
    counted = REGISTRY.get_sample_value("bdb_refused_messages_total", labels) or 0.0
    async with telegram(app, stub) as (_, handled):
        user = TgUser(stub, handled, 603)
        stub.fail("sendMessage", bad_request("can't parse entities: unexpected"), 603)
        shown = await user.say("/help")
    assert len(shown) == 1 and "帮代办" in shown[0].text
    assert "<b>" not in shown[0].text and shown[0].buttons  # the words and buttons, no markup
    assert REGISTRY.get_sample_value("bdb_refused_messages_total", labels) == counted + 1
