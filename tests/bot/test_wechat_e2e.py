"""The WeChat channel end to end: signed callbacks in, against a WeChat API stub out."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.app import App
from bot.channels.wechat import CALLBACK_KEY, SENDER_KEY, setup_wechat
from bot.config import Settings
from bot.delivery import Delivery
from bot.outbox import OutboxWorker
from storage import outbox, wechat
from storage.models import (
    Applicant,
    AuditRecord,
    Case,
    OutboxMessage,
    OutboxStatus,
    WeChatFollower,
    utcnow,
)
from storage.outbox import Recipient
from support import GOOD_ANSWERS, bind_staff, notices_to
from wechat_stub import (
    PUBLIC,
    TOKEN,
    WeChatApiStub,
    WeChatServer,
    WxUser,
    wechat_settings,
)

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"


@pytest.fixture
async def stub() -> AsyncIterator[WeChatApiStub]:
    api = WeChatApiStub()
    await api.server.start_server()
    yield api
    await api.server.close()


class Running:
    def __init__(
        self, client: TestClient, web_app: web.Application, app: App, settings: Settings
    ) -> None:
        self.client, self.web_app, self.app = client, web_app, app
        self.encrypted = settings.wechat_aes_key is not None  # 安全模式 posts encrypted
        delivery = Delivery(app.services, {"wechat": web_app[SENDER_KEY]})
        self.worker: OutboxWorker = delivery.workers["wechat"]

    def server(self, encrypted: bool | None = None) -> WeChatServer:
        return WeChatServer(self.client, self.encrypted if encrypted is None else encrypted)

    async def deliver(self) -> None:
        """Run the wechat outbox worker until nothing is due."""
        while await self.worker.run_once():
            pass


@asynccontextmanager
async def wechat_channel(app: App, stub: WeChatApiStub, **extra: Any) -> AsyncIterator[Running]:
    web_app = web.Application()
    settings = wechat_settings(app, stub, **extra)
    setup_wechat(web_app, app, settings)
    async with TestClient(TestServer(web_app)) as client:
        yield Running(client, web_app, app, settings)


def option(text: str, label: str) -> tuple[str, str]:
    """The number and full label of the option containing `label` in a reply."""
    for number, shown in re.findall(r"\[(\d+)\] ([^\[\n]+?)(?=\s{2}\[|\n|$)", text):
        if label in shown:
            return number, shown.strip()
    raise AssertionError(f"no option {label!r} in {text!r}")


async def choose(user: WxUser, label: str, by_number: bool = False) -> str:
    number, full = option(user.last.text, label)
    return await user.say(number if by_number else full)


async def fill_application(user: WxUser) -> None:
    """The application dialog typed in WeChat: labels typed, one option by its number."""
    await choose(user, "申请帮代办")
    await fill_application_from_kind(user, kind_by_number=True)


async def fill_application_from_kind(user: WxUser, kind_by_number: bool = False) -> None:
    await choose(user, "一般项目", by_number=kind_by_number)
    await choose(user, "是，已在新区立项")
    await choose(user, "不是房地产")
    for name in (
        "company",
        "credit_code",
        "project_name",
        "project_code",
        "contact_name",
        "contact_phone",
        "project_summary",
    ):
        await user.say(GOOD_ANSWERS[name])
    await choose(user, "施工许可")
    await choose(user, "完成")


async def cases(app: App) -> list[Case]:
    async with app.services.db.sessions() as session:
        return list((await session.scalars(select(Case))).all())


# -- verification and signatures ----------------------------------------------------------


async def test_server_verification_echoes_only_when_signed_by_our_token(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    from wechat_stub import sign

    async with wechat_channel(embedded_app, stub) as running:
        stamp, nonce = str(int(time.time())), "8823"
        good = {"signature": sign(TOKEN, stamp, nonce), "timestamp": stamp, "nonce": nonce}
        answer = await running.client.get("/wechat", params=good | {"echostr": "e-123"})
        assert answer.status == 200 and await answer.text() == "e-123"
        bad = good | {"signature": sign("other-token", stamp, nonce), "echostr": "e-123"}
        answer = await running.client.get("/wechat", params=bad)
        assert answer.status == 403 and "e-123" not in await answer.text()
        old = str(int(time.time()) - 600)
        stale = {"signature": sign(TOKEN, old, nonce), "timestamp": old, "nonce": nonce}
        answer = await running.client.get("/wechat", params=stale | {"echostr": "e-123"})
        assert answer.status == 403


async def test_wrong_signature_or_stale_callback_is_refused_and_not_handled(
    embedded_app: App, stub: WeChatApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    async with wechat_channel(embedded_app, stub) as running:
        server = running.server()
        user = WxUser(server, "o-forged")
        forged = await server.post(user.text_xml("/start"), token="not-our-token")
        replayed = await server.post(user.text_xml("/start"), timestamp=int(time.time()) - 301)
    assert forged.status == 403 and replayed.status == 403
    assert forged.text == "" and replayed.text == ""
    refusals = [r for r in caplog.records if "wechat callback refused" in r.getMessage()]
    assert len(refusals) == 2 and all("\n" not in r.getMessage() for r in refusals)
    async with embedded_app.services.db.sessions() as session:
        assert await session.get(WeChatFollower, "o-forged") is None


async def test_encrypted_callback_with_a_bad_msg_signature_is_refused(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    from wechat_stub import sign

    async with wechat_channel(embedded_app, stub) as running:
        stamp, nonce = str(int(time.time())), "77"
        params = {
            "signature": sign(TOKEN, stamp, nonce),
            "timestamp": stamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": "0" * 40,
        }
        body = "<xml><ToUserName>gh</ToUserName><Encrypt>AAAA</Encrypt></xml>"
        answer = await running.client.post("/wechat", params=params, data=body.encode())
        assert answer.status == 403


async def test_xml_entities_and_oversized_bodies_are_refused(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(embedded_app, stub) as running:
        server = running.server()
        bomb = (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>'
        )
        assert (await server.post(bomb)).status == 400
        huge = WxUser(server, "o-huge").text_xml("字" * 30000)
        assert (await server.post(huge)).status == 413


# -- the conversation -------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "aes"])
async def test_application_end_to_end_with_the_form_as_a_signed_download_link(
    app: App, stub: WeChatApiStub, encrypted: bool
) -> None:
    mode = {} if encrypted else {"wechat_aes_key": None}  # 明文模式 or 安全模式
    async with wechat_channel(app, stub, **mode) as running:
        user = WxUser(running.server(), f"o-apply-{int(encrypted)}")
        welcome = await user.subscribe(scene="窗口")
        assert "帮代办" in welcome and option(welcome, "申请帮代办")
        await fill_application(user)
        assert "请核对" in user.last.text and GOOD_ANSWERS["company"] in user.last.text
        submitted = await choose(user, "提交")
        (case,) = await cases(app)
        assert case.number in submitted and "已提交" in submitted
        async with app.services.db.sessions() as session:
            applicant = await session.get(Applicant, case.applicant_id)
            follower = await session.get(WeChatFollower, user.openid)
        assert applicant is not None and applicant.channel == "wechat"
        assert applicant.chat_id == user.openid
        assert follower is not None and follower.scene == "窗口"
        assert stub.called(CUSTOM) == []  # every answer so far was passive

        await running.deliver()  # the printable form, by customer-service message
        (form,) = stub.texts_to(user.openid)
        assert case.number in form and ".docx" in form
        link = re.search(re.escape(PUBLIC) + r"(/dl/\S+)", form)
        assert link is not None
        download = await running.client.get(link.group(1))
        assert download.status == 200
        assert (await download.read()).startswith(b"PK")  # a zip: the .docx
        assert ".docx" in download.headers["Content-Disposition"]
        tampered = await running.client.get(link.group(1)[:-3] + "xyz")
        assert tampered.status == 404
        async with app.services.db.sessions() as session:  # the link was the applicant's
            (record,) = await session.scalars(select(AuditRecord))
        assert (record.action, record.actor_kind, record.applicant_id) == (
            "download.file",
            "applicant",
            case.applicant_id,
        )
        assert record.case_number == case.number and record.channel == "wechat"
        assert record.actor_id == case.applicant_id and record.client

        status = await user.say(f"/status {case.number}")
        assert case.number in status and "已提交" in status


async def test_a_slow_reply_goes_out_as_a_customer_service_message(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    release = asyncio.Event()
    real = embedded_app.router.handle

    async def slow(event):  # type: ignore[no-untyped-def]
        await release.wait()
        return await real(event)

    embedded_app.router.handle = slow  # type: ignore[method-assign]
    async with wechat_channel(embedded_app, stub, wechat_reply_within=0.05) as running:
        user = WxUser(running.server(), "o-slow")
        passive = await user.say("/help")
        assert passive == "" and user.last.body == "success"
        assert stub.texts_to(user.openid) == []
        release.set()
        await running.web_app[CALLBACK_KEY].close()  # waits for replies on their way
    (help_text,) = stub.texts_to(user.openid)
    assert "/apply" in help_text or "申请" in help_text


async def test_a_retried_callback_creates_one_case(app: App, stub: WeChatApiStub) -> None:
    async with wechat_channel(app, stub) as running:
        user = WxUser(running.server(), "o-retry")
        await user.click("m:apply")
        assert option(user.last.text, "一般项目")
        await fill_application_from_kind(user)
        _, label = option(user.last.text, "提交")
        submit = user.text_xml(label, msg_id="990001")
        first = await user.send(submit)
        retries = [await running.server().post(submit) for _ in range(3)]
    assert "已提交" in first
    assert all(r.status == 200 and r.body == "success" for r in retries)
    assert len(await cases(app)) == 1


async def test_supplement_photo_is_fetched_by_media_id_and_attached(
    app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(app, stub) as running:
        user = WxUser(running.server(), "o-photo")
        await user.subscribe()
        await fill_application(user)
        await choose(user, "提交")
        (case,) = await cases(app)
        window = await bind_staff(app, "李娜")
        await window.press_data(f"w:view:{case.number}")
        await window.press("受理")
        await window.say("材料齐全")
        await window.press("材料交接完成")
        await window.press("要求补正")
        await window.say("建设工程规划许可证照片")
        await running.deliver()
        notice = stub.texts_to(user.openid)[-1]
        assert "补正" in notice and "[1] 上传材料" in notice
        await user.say("1")  # the notice's option, typed
        uploaded = await user.image("MEDIA-1")
        assert "已收到" in uploaded
        assert stub.called("/cgi-bin/media/get")[0].body["media_id"] == "MEDIA-1"
        await choose(user, "上传完成")
        assert "补正材料已提交" in user.last.text
    (case,) = await cases(app)
    assert case.status == "in_progress"


async def test_unsupported_message_and_unsubscribe(embedded_app: App, stub: WeChatApiStub) -> None:
    async with wechat_channel(embedded_app, stub) as running:
        user = WxUser(running.server(), "o-bye")
        await user.say("/start")
        voice = await user.send(user._envelope("voice", "<MediaId>v</MediaId><MsgId>5</MsgId>"))
        assert "文字" in voice
        assert await user.send(user.event_xml("unsubscribe")) == ""
    async with embedded_app.services.db.sessions() as session:
        follower = await session.get(WeChatFollower, "o-bye")
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "o-bye"))
    assert follower is not None and not follower.subscribed
    assert applicant is None or applicant.unreachable


# -- notices ------------------------------------------------------------------------------


async def queue_notice(app: App, openid: str, key: str, text: str) -> None:
    async with app.services.db.transaction() as session:
        outbox.enqueue(session, Recipient("wechat", openid), text, key=key)


async def age_window(app: App, openid: str, hours: float) -> None:
    async with app.services.db.transaction() as session:
        await session.execute(
            update(WeChatFollower)
            .where(WeChatFollower.openid == openid)
            .values(last_message_at=utcnow() - dt.timedelta(hours=hours))
        )


async def test_notices_outside_the_48_hour_window_use_the_template_or_are_undeliverable(
    app: App, stub: WeChatApiStub
) -> None:
    templates = {"case": "TPL-CASE-STATUS"}
    async with wechat_channel(app, stub, wechat_templates=templates) as running:
        user = WxUser(running.server(), "o-late")
        await user.say("/start")
        await queue_notice(
            app,
            user.openid,
            "case:BDB-2026-000001:event:1",
            "✅ 申请 <b>BDB-2026-000001</b> 已受理。",
        )
        await running.deliver()
        assert stub.texts_to(user.openid)[-1].startswith("✅ 申请 BDB-2026-000001 已受理")

        await age_window(app, user.openid, hours=49)
        await queue_notice(
            app,
            user.openid,
            "case:BDB-2026-000001:event:2",
            "🔧 申请 <b>BDB-2026-000001</b> 正在办理。",
        )
        await queue_notice(app, user.openid, "question:7:closed", "您的咨询已办结。")
        await running.deliver()
        sender = running.web_app[SENDER_KEY]

    (template,) = stub.called(TEMPLATE)
    assert template.body["touser"] == user.openid
    assert template.body["template_id"] == "TPL-CASE-STATUS"
    assert template.body["data"]["keyword1"]["value"] == "BDB-2026-000001"
    assert "正在办理" in template.body["data"]["first"]["value"]
    assert len(stub.texts_to(user.openid)) == 1  # nothing by customer-service after 48 h
    async with app.services.db.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        undeliverable = await wechat.undeliverable_count(session)
        figures = await wechat.stats(session, dt.timedelta(hours=48))
    assert [row.status for row in rows] == [OutboxStatus.SENT, OutboxStatus.SENT, OutboxStatus.DEAD]
    assert rows[2].attempts == 1 and "no question template" in (rows[2].last_error or "")
    assert undeliverable == 1 and sender.undeliverable["question"] == 1
    assert (figures.followers, figures.in_window, figures.undeliverable) == (1, 0, 1)


async def test_a_case_notice_no_one_can_deliver_asks_the_handler_to_phone(
    app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(app, stub) as running:  # no templates configured
        user = WxUser(running.server(), "o-silent")
        await user.subscribe()
        await fill_application(user)
        await choose(user, "提交")
        (case,) = await cases(app)
        await running.deliver()  # the printable form, inside the window
        window = await bind_staff(app, "李娜")
        await window.press_data(f"w:view:{case.number}")
        await age_window(app, user.openid, hours=49)
        await window.press("受理")
        await window.say("材料齐全")
        await running.deliver()
    assert not any("已受理" in text for text in stub.texts_to(user.openid))
    async with app.services.db.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.chat_id == user.openid)
        dead = [r for r in (await session.scalars(query)).all() if r.status == OutboxStatus.DEAD]
    assert len(dead) == 1 and "undeliverable" in (dead[0].last_error or "")
    told = [n for n in await notices_to(app, window) if "未能送达企业" in n.text]
    assert len(told) == 1 and case.number in told[0].text
    assert GOOD_ANSWERS["contact_name"] in told[0].text  # whom to phone


async def test_out_of_window_answers_fall_back_to_the_template_or_mark_unreachable(
    app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(app, stub, wechat_templates={"case": "TPL-CASE"}) as running:
        user = WxUser(running.server(), "o-quota")
        await user.say("/start")
        stub.fail(CUSTOM, 45047, times=2)  # the five messages of the window are spent
        await queue_notice(app, user.openid, "case:BDB-2026-000002:event:1", "申请已受理。")
        await queue_notice(app, user.openid, "question:8:closed", "您的咨询已办结。")
        await running.deliver()
    assert [c.body["template_id"] for c in stub.called(TEMPLATE)] == ["TPL-CASE"]
    async with app.services.db.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "o-quota"))
    assert [row.status for row in rows] == [OutboxStatus.SENT, OutboxStatus.DEAD]
    assert "unreachable" in (rows[1].last_error or "")
    assert applicant is not None and applicant.unreachable
    async with wechat_channel(app, stub) as running:
        await WxUser(running.server(), "o-quota").say("您好")  # writing again reopens the window
    async with app.services.db.sessions() as session:
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "o-quota"))
    assert applicant is not None and not applicant.unreachable


async def test_access_token_is_fetched_once_and_refreshed_when_it_expires_mid_run(
    app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(app, stub) as running:
        user = WxUser(running.server(), "o-token")
        await user.say("/start")
        for n in range(3):
            await queue_notice(app, user.openid, f"question:{n}:closed", f"通知 {n}")
            await running.deliver()
        assert len(stub.tokens_issued) == 1
        stub.expire_tokens()  # 7,200 s later: WeChat answers 42001
        await queue_notice(app, user.openid, "question:9:closed", "通知 9")
        await running.deliver()
        # A second process (another worker) shares the cached token instead of fetching one.
        async with wechat_channel(app, stub) as other:
            await queue_notice(app, user.openid, "question:10:closed", "通知 10")
            await other.deliver()
    assert stub.texts_to(user.openid)[-2:] == ["通知 9", "通知 10"]
    fresh = stub.tokens_issued[1]
    assert len(stub.tokens_issued) == (2 if app.settings.redis_url else 3)
    assert stub.called(CUSTOM)[-2].token == fresh
    async with app.services.db.sessions() as session:
        count = await session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.SENT)
        )
    assert count == 5


async def test_menu_click_presses_the_button_and_qr_scene_is_recorded(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(embedded_app, stub) as running:
        user = WxUser(running.server(), "o-menu")
        await user.send(user.event_xml("SCAN", "园区展会"))
        listed = await user.click("m:cases")
        assert "申请" in listed
    async with embedded_app.services.db.sessions() as session:
        follower = await session.get(WeChatFollower, "o-menu")
    assert follower is not None and follower.scene == "园区展会"
    async with embedded_app.services.db.sessions() as session:
        figures = await wechat.stats(session, dt.timedelta(hours=48))
    assert figures.scenes == {"园区展会": 1} and figures.in_window == 0  # a scan is not a message


async def test_rate_limited_notice_waits_without_counting_an_attempt(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    async with wechat_channel(embedded_app, stub) as running:
        user = WxUser(running.server(), "o-busy")
        await user.say("/start")
        stub.fail(CUSTOM, 45011)  # api minute-quota reached
        await queue_notice(embedded_app, user.openid, "question:1:closed", "您的咨询已办结。")
        await running.deliver()
    async with embedded_app.services.db.sessions() as session:
        (row,) = (await session.scalars(select(OutboxMessage))).all()
    assert row.status == OutboxStatus.PENDING and row.attempts == 0
    assert row.next_attempt_at > utcnow() + dt.timedelta(seconds=30)
    assert stub.texts_to(user.openid) == []


async def test_concurrent_callers_share_one_token_fetch(app: App, stub: WeChatApiStub) -> None:
    async with wechat_channel(app, stub) as running, wechat_channel(app, stub) as other:
        apis = [running.web_app[SENDER_KEY].api, other.web_app[SENDER_KEY].api]
        tokens = await asyncio.gather(*(apis[n % 2].token() for n in range(10)))
    per_process = 1 if app.settings.redis_url else 2  # memory: one token per process
    assert len(stub.tokens_issued) == per_process and len(set(tokens)) == per_process


async def test_a_reply_too_long_for_one_message_goes_out_in_parts(
    embedded_app: App, stub: WeChatApiStub
) -> None:
    real = embedded_app.router.handle
    long_answer = "\n".join(f"第{n}条：" + "说明" * 60 for n in range(20))

    async def verbose(event):  # type: ignore[no-untyped-def]
        replies = await real(event)
        replies[0].text = long_answer
        return replies

    embedded_app.router.handle = verbose  # type: ignore[method-assign]
    async with wechat_channel(embedded_app, stub) as running:
        user = WxUser(running.server(), "o-long")
        assert await user.say("/help") == "" and user.last.body == "success"
        await running.web_app[CALLBACK_KEY].close()
    parts = stub.texts_to(user.openid)
    assert len(parts) > 1 and "\n".join(parts).startswith(long_answer)


async def test_a_retried_event_is_handled_once(app: App, stub: WeChatApiStub) -> None:
    """Events carry no MsgId: a retry is the same sender and CreateTime, handled once; a later
    press of the same menu entry is handled again."""
    handled: list[object] = []
    real = app.router.handle

    async def counting(event):  # type: ignore[no-untyped-def]
        handled.append(event)
        return await real(event)

    app.router.handle = counting  # type: ignore[method-assign]
    async with wechat_channel(app, stub) as running:
        user = WxUser(running.server(), "o-event-retry")
        pressed = int(time.time())
        click = user.event_xml("CLICK", "m:apply", create_time=pressed)
        first = await user.send(click)
        retries = [await running.server().post(click) for _ in range(2)]
        assert len(handled) == 1
        await user.send(user.event_xml("CLICK", "m:apply", create_time=pressed + 1))
    assert option(first, "一般项目")
    assert all(r.status == 200 for r in retries)
    assert len(handled) == 2
