"""WeCom (企业微信 / 政务微信) for staff end to end: signed, encrypted callbacks in, against a
WeCom stand-in out (token, message/send, update_template_card, member look-ups)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from wecom_stub import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    SECRET,
    TOKEN,
    Member,
    WeComServer,
    WeComStub,
)

from bot.app import App
from bot.channels.wecom import CALLBACK_KEY, SENDER_KEY, setup_wecom
from bot.channels.wecom.sender import WeComSender
from bot.config import Settings
from bot.delivery import Delivery
from bot.outbox import OutboxWorker
from storage import roster
from storage.models import Case, CaseStatus, OutboxMessage, OutboxStatus, Staff
from support import Chat, fill_application

PUBLIC = "https://bdb.example.gov.cn"
QUESTION = "我们厂区门口的路灯坏了好几天，能不能帮忙反映一下"
ANSWER = "已联系市政部门，本周内修复"


@pytest.fixture
async def stub() -> AsyncIterator[WeComStub]:
    api = WeComStub()
    await api.server.start_server()
    yield api
    await api.server.close()


def wecom_settings(app: App, stub: WeComStub, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "wecom_corp_id": CORP_ID,
        "wecom_agent_id": AGENT_ID,
        "wecom_secret": SECRET,
        "wecom_token": TOKEN,
        "wecom_aes_key": AES_KEY,
        "wecom_api_url": stub.url,
        "wecom_oauth_url": f"{stub.url}/connect/oauth2/authorize",
        "web_public_url": PUBLIC,
        "download_secret": "test-download-secret",
        "web_secret": "test-secret",
    }
    return app.settings.model_copy(update=values | extra)


class Running:
    def __init__(self, client: TestClient, web_app: web.Application, stub: WeComStub) -> None:
        self.client, self.web_app, self.stub = client, web_app, stub
        self.sender: WeComSender = web_app[SENDER_KEY]
        self.app_services = self.sender.services
        delivery = Delivery(self.sender.services, {"wecom": self.sender})
        self.worker: OutboxWorker = delivery.workers["wecom"]
        self.server = WeComServer(client, stub, self.settle)

    async def settle(self) -> None:
        """Wait for replies the callback left to finish behind its answer."""
        await self.web_app[CALLBACK_KEY].close()

    def member(self, userid: str) -> Member:
        return Member(self.server, userid)

    async def deliver(self) -> None:
        """Run the wecom outbox worker until nothing is due."""
        while await self.worker.run_once():
            pass


@asynccontextmanager
async def wecom_channel(app: App, stub: WeComStub, **extra: Any) -> AsyncIterator[Running]:
    web_app = web.Application()
    setup_wecom(web_app, app, wecom_settings(app, stub, **extra))
    async with TestClient(TestServer(web_app)) as client:
        yield Running(client, web_app, stub)


async def give_userid(app: App, name: str, userid: str) -> Staff:
    async with app.services.db.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == name))
        assert staff is not None
        await roster.bind_wecom(session, staff, userid)
    return staff


async def rows_to(app: App, channel: str, chat_id: str) -> list[OutboxMessage]:
    async with app.services.db.sessions() as session:
        query = select(OutboxMessage).where(
            OutboxMessage.channel == channel, OutboxMessage.chat_id == chat_id
        )
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


# -- the door: signatures, retries, who is who ----------------------------------------------


async def test_url_verification_answers_the_decrypted_echostr_only_when_signed(
    embedded_app: App, stub: WeComStub
) -> None:
    async with wecom_channel(embedded_app, stub) as running:
        stamp, nonce = str(int(time.time())), "4711"
        echo, signature = running.server.crypto.encrypt(b"echo-8823", stamp, nonce)
        query = {"msg_signature": signature, "timestamp": stamp, "nonce": nonce}
        answer = await running.client.get("/wecom", params=query | {"echostr": echo})
        assert answer.status == 200 and await answer.text() == "echo-8823"
        forged = query | {"msg_signature": "0" * 40, "echostr": echo}
        answer = await running.client.get("/wecom", params=forged)
        assert answer.status == 403 and "echo-8823" not in await answer.text()


async def test_a_callback_without_a_valid_signature_is_refused_and_not_handled(
    embedded_app: App, stub: WeComStub
) -> None:
    await give_userid(embedded_app, "李娜", "LiNa")
    async with wecom_channel(embedded_app, stub) as running:
        li = running.member("LiNa")
        forged = await running.server.post(li.text_xml("/start"), token="not-our-token")
        stale = await running.server.post(li.text_xml("/start"), timestamp=int(time.time()) - 301)
        garbage = await running.client.post(
            "/wecom",
            params={"msg_signature": "x" * 40, "timestamp": str(int(time.time())), "nonce": "1"},
            data=b"<xml><Encrypt>AAAA</Encrypt></xml>",
        )
        await running.settle()
    assert (forged, stale, garbage.status) == (403, 403, 403)
    assert stub.sends == []


async def test_a_retried_callback_is_handled_once(app: App, stub: WeComStub) -> None:
    await give_userid(app, "李娜", "LiNa")
    async with wecom_channel(app, stub) as running:
        li = running.member("LiNa")
        xml = li.text_xml("/help", msg_id="7000000000000000001")
        await li.send(xml)
        answered = len(li.phone.messages)
        for _ in range(2):  # WeCom retries a message it got no timely answer for
            await li.send(xml)
        await li.say("/help")  # the same words in a new message are answered again
    assert answered >= 1 and len(li.phone.messages) == 2 * answered


async def test_unknown_or_revoked_userids_are_refused_politely(app: App, stub: WeComStub) -> None:
    staff = await give_userid(app, "王磊", "WangLei")
    async with app.services.db.transaction() as session:
        revoked = await session.get(Staff, staff.id)
        assert revoked is not None
        revoked.active = False
    async with wecom_channel(app, stub) as running:
        stranger, former = running.member("SomeoneElse"), running.member("WangLei")
        await stranger.say("/inbox")
        await former.say("/inbox")
        await former.say("/apply")
    for member in (stranger, former):
        assert member.phone.cards == []
        texts = member.phone.texts
        assert texts and all("仅供“帮代办”工作人员使用" in text for text in texts)
        assert "BDB-" not in member.phone.all_text


async def test_bind_code_sent_to_the_app_binds_the_userid_and_keeps_the_other_channel(
    app: App, stub: WeComStub
) -> None:
    from support import bind_staff

    await bind_staff(app, "李娜", "li-tg")  # bound on another channel first
    async with app.services.db.transaction() as session:
        from storage import questions

        li = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert li is not None
        import datetime as dt

        code = await questions.create_invite(session, li.id, dt.timedelta(hours=1))
    async with wecom_channel(app, stub) as running:
        member = running.member("LiNa")
        await member.say(f"/bind {code}")
        assert "绑定成功：李娜" in member.phone.texts[-1]
        await member.say("/start")
        assert "仅供" not in member.phone.texts[-1]
    async with app.services.db.sessions() as session:
        bound = await session.get(Staff, li.id)
        assert bound is not None
        assert (bound.channel, bound.chat_id, bound.wecom_userid) == ("test", "li-tg", "LiNa")


# -- notices as cards, presses running the same routes --------------------------------------


async def test_a_question_routed_to_li_na_arrives_as_a_card_and_her_answer_reaches_the_web_chat(
    app: App, stub: WeComStub
) -> None:
    await give_userid(app, "李娜", "LiNa")
    async with wecom_channel(app, stub) as running:
        enterprise = Chat(app.router, "ent-web", channel="web")
        await enterprise.say(QUESTION)
        await running.deliver()
        li = running.member("LiNa")
        (card,) = li.phone.cards
        assert "路灯" in card.text
        assert card.buttons == ["回复", "转办", "已解决"]
        await li.press(card, "回复")
        assert card.replaced == "李娜：回复" and card.buttons == []
        assert "请输入对咨询" in li.phone.texts[-1]
        await li.say(ANSWER)
        assert "答复已发送给企业" in li.phone.texts[-1]
    answers = [row.text for row in await rows_to(app, "web", "ent-web") if ANSWER in row.text]
    assert len(answers) == 1 and "李娜" in answers[0]


async def test_two_window_staff_get_one_new_case_card_one_acts_both_cards_change_late_press_refused(
    app: App, stub: WeComStub
) -> None:
    await give_userid(app, "李娜", "LiNa")
    await give_userid(app, "王磊", "WangLei")
    enterprise = Chat(app.router, "ent-case", channel="web")
    await fill_application(enterprise)
    await enterprise.press("提交")
    number = re.search(r"BDB-\d{4}-\d{6}", enterprise.text)
    assert number
    async with wecom_channel(app, stub) as running:
        await running.deliver()
        li, wang = running.member("LiNa"), running.member("WangLei")
        (li_card,) = [c for c in li.phone.cards if number.group(0) in c.text]
        (wang_card,) = [c for c in wang.phone.cards if number.group(0) in c.text]
        assert li_card.buttons == wang_card.buttons == ["处理"]

        await li.press(li_card, "处理")
        assert li_card.replaced == wang_card.replaced == "李娜：处理"
        (screen,) = [c for c in li.phone.cards if c is not li_card]  # the case, as a card
        await li.press(screen, "受理")
        await li.say("材料齐全，予以受理")
        assert "已受理" in li.phone.all_text

        before = len(wang.phone.messages)
        await wang.press(wang_card, "处理", shown=False)  # his press crossed the update
        (late,) = wang.phone.messages[before:]
        assert late == "该事项已由 李娜 处理（处理），无需您再操作。"
    async with app.services.db.sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == number.group(0)))
        assert case is not None and case.status == CaseStatus.ACCEPTED
        assert case.handler_id == (await give_userid(app, "李娜", "LiNa")).id


async def test_a_card_press_for_someone_elses_card_or_an_unknown_key_is_refused(
    app: App, stub: WeComStub
) -> None:
    await give_userid(app, "李娜", "LiNa")
    await give_userid(app, "王磊", "WangLei")
    async with wecom_channel(app, stub) as running:
        await Chat(app.router, "ent-web", channel="web").say(QUESTION)
        await running.deliver()
        li, wang = running.member("LiNa"), running.member("WangLei")
        (card,) = li.phone.cards
        await wang.send(wang.press_xml(card, "已解决"))  # a forged press on her card
        assert "卡片已失效" in wang.phone.texts[-1]
        assert card.buttons == ["回复", "转办", "已解决"]


# -- delivery: token, limits, errors --------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["production"], indirect=True)
async def test_the_access_token_is_fetched_once_for_two_processes(
    app: App, stub: WeComStub
) -> None:
    from bot.channels.wecom import build_api, token_cache

    settings = wecom_settings(app, stub)
    first = build_api(settings, token_cache(settings, app))
    second = build_api(settings, token_cache(settings, app))  # another process, same Redis
    try:
        await asyncio.gather(first.send_text("LiNa", "一"), second.send_text("LiNa", "二"))
        assert stub.token_fetches == 1
        stub.expire_tokens()  # 42001 after its 7,200 s: fetched again, once
        await asyncio.gather(first.send_text("LiNa", "三"), second.send_text("LiNa", "四"))
        assert stub.token_fetches == 2
    finally:
        await first.close()
        await second.close()
    assert sorted(stub.phone("LiNa").texts) == sorted(["一", "二", "三", "四"])


async def test_a_retried_send_is_not_seen_twice(app: App, stub: WeComStub) -> None:
    await give_userid(app, "李娜", "LiNa")
    async with wecom_channel(app, stub) as running:
        await Chat(app.router, "ent-web", channel="web").say(QUESTION)
        (row,) = await rows_to(app, "wecom", "LiNa")
        from bot.outbox import delivering

        delivering.set(row)
        for _ in range(2):  # sent, then the worker died before its COMMIT: sent again
            await running.sender.send(row.chat_id, row.text, [], None)
    assert len(stub.phone("LiNa").messages) == 1 and stub.duplicates == 1


async def test_45009_backs_off_without_counting_an_attempt(app: App, stub: WeComStub) -> None:
    await give_userid(app, "李娜", "LiNa")
    async with wecom_channel(app, stub) as running:
        await Chat(app.router, "ent-web", channel="web").say(QUESTION)
        stub.fail("/cgi-bin/message/send", 45009)
        await running.worker.run_once()
        (row,) = await rows_to(app, "wecom", "LiNa")
        assert row.status == OutboxStatus.PENDING and row.attempts == 0
        assert "retry after" in (row.last_error or "")
        assert stub.phone("LiNa").messages == []


async def test_81013_marks_the_member_unreachable_on_wecom_and_tells_an_administrator(
    app: App, stub: WeComStub
) -> None:
    li = await give_userid(app, "李娜", "LiNa")
    admin = await give_userid(app, "陈晨", "ChenChen")
    stub.visible = {"ChenChen"}  # 李娜 left the app's visible range
    async with wecom_channel(app, stub) as running:
        await Chat(app.router, "ent-web", channel="web").say(QUESTION)
        await running.deliver()
        (row,) = await rows_to(app, "wecom", "LiNa")
        assert row.status == OutboxStatus.DEAD
        told = stub.phone("ChenChen").all_text
        assert "李娜" in told and "81013" in told and "可见范围" in told
        async with app.services.db.sessions() as session:
            flagged = await session.get(Staff, li.id)
            assert flagged is not None and flagged.wecom_unreachable
            assert ("wecom", "LiNa") not in flagged.chats()
        # She writes to the app again: WeCom shows it to her, notices resume.
        stub.visible = None
        await running.member("LiNa").say("/start")
        async with app.services.db.sessions() as session:
            again = await session.get(Staff, li.id)
            assert again is not None and not again.wecom_unreachable
    assert admin.id != li.id
