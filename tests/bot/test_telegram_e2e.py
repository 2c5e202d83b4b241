"""The Telegram adapter end to end against the Bot API stub, on each TELEGRAM_LIBRARY stack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import App, build_app
from bot.channels.telegram import running
from botapi_stub import BotApiStub, blocked, too_many_requests
from services.uploads import UploadCaps, UploadChecker
from storage import outbox
from storage.models import Applicant, Case, OutboxMessage, OutboxStatus
from storage.outbox import Recipient
from support import GOOD_ANSWERS, Chat, waiting_for_supplement
from tgchat import Handled, TgUser, bot_settings, stub_server, telegram, until_sent


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    async with stub_server() as server:
        yield server


async def fill_application(user: TgUser) -> None:
    """The application dialog through Telegram, as tests/support.py walks it in-process."""
    await user.say("/apply")
    for label in ("一般项目", "是，已在新区立项", "不是房地产"):
        await user.press(label)
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
    await user.press("施工许可")
    await user.press("完成")


async def test_start_shows_the_menu_with_inline_buttons_and_the_command_menu(
    app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(app, stub, telegram_library=library) as (
        _,
        handled,
    ):
        user = TgUser(stub, handled, 501)
        (message,) = await user.say("/start")
    assert message.method == "sendMessage"
    assert message.params["parse_mode"] == "HTML"
    assert "帮代办" in message.text
    labels = [button["text"] for button in message.buttons]
    assert "申请帮代办" in labels and "我的申请" in labels
    assert all(len(b["callback_data"].encode()) <= 64 for b in message.buttons)
    (commands,) = stub.called("setMyCommands")
    assert [c["command"] for c in commands.params["commands"]] == [
        "start",
        "apply",
        "cases",
        "ask",
        "help",
        "cancel",
    ]
    assert commands.params["commands"][1]["description"] == "申请帮代办"
    assert stub.called("deleteWebhook")  # long polling


async def test_full_application_ends_with_case_number_and_the_docx_form_then_status(
    app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(app, stub, telegram_library=library, run_worker=True) as (_, handled):
        user = TgUser(stub, handled, 502)
        await user.say("/start")
        await fill_application(user)
        assert "请核对" in user.text and GOOD_ANSWERS["company"] in user.text
        await user.press("提交")
        async with app.services.db.sessions() as session:
            (case,) = (await session.scalars(select(Case))).all()
        assert case.number in user.text and "已提交" in user.text
        # The printable form follows through the outbox worker running in the bot process.
        (document,) = await until_sent(stub, 502, "sendDocument")
        name, content = document.files["document"]
        assert name.endswith(".docx") and content.startswith(b"PK")  # a zip: the .docx
        assert case.number in document.text  # the caption
        await user.say(f"/status {case.number}")
        assert case.number in user.text and "已提交" in user.text
    presses = [u for u in stub.calls if u.method == "answerCallbackQuery"]
    assert len(presses) == 6  # every button press was answered
    # Button presses in the dialog edit the pressed message in place.
    assert stub.sent(502, "editMessageText")


async def test_documents_and_photos_are_downloaded_and_stickers_are_unsupported(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(embedded_app, stub, telegram_library=library) as (
        _,
        handled,
    ):
        user = TgUser(stub, handled, 503)
        await user.upload("营业执照.pdf", b"%PDF-1.4 test", "application/pdf")
        assert "当前没有需要上传材料的申请" in user.text
        assert stub.called("getFile") == []  # refused before downloading
        # An upload is awaited (as after 上传材料): now the file is fetched.
        await embedded_app.services.state.save("telegram:503", {"mode": "upload:BDB-2026-9"})
        await user.upload("营业执照.pdf", b"%PDF-1.4 test", "application/pdf")
        assert [call.params["file_id"] for call in stub.called("getFile")] == ["file-2"]
        update = stub.user_sends_sticker(503)
        await handled.wait(update)
        assert "只能识别文字" in stub.sent(503)[-1].text


async def test_a_file_over_the_upload_cap_is_refused_without_downloading_it(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    embedded_app.services.uploads = UploadChecker(UploadCaps(max_bytes=1024))
    async with telegram(embedded_app, stub, telegram_library=library) as (_, handled):
        user = TgUser(stub, handled, 503)
        await waiting_for_supplement(embedded_app, Chat(embedded_app.router, "503", "telegram"))
        await user.upload("营业执照.pdf", b"%PDF-1.4 " + bytes(2048), "application/pdf")
        assert stub.called("getFile") == []
        assert "“营业执照.pdf”未接收" in user.text and "超过 1 KB" in user.text


async def test_blocked_user_is_marked_unreachable_and_gets_nothing_more(
    app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(app, stub, telegram_library=library, run_worker=True) as (_, handled):
        user = TgUser(stub, handled, 504)
        await user.say("/start")
        stub.fail("sendMessage", blocked(), chat_id=504, times=100)
        await user.say("/help")
        async with app.services.db.transaction() as session:
            applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "504"))
            assert applicant is not None and applicant.unreachable
            outbox.enqueue(session, Recipient("telegram", "504"), "通知", key="n:504:1")
        attempts = len(stub.called("sendMessage"))
        async with asyncio.timeout(5):
            while True:
                async with app.services.db.sessions() as session:
                    row = await session.scalar(select(OutboxMessage))
                assert row is not None
                if row.status != OutboxStatus.PENDING:
                    break
                await asyncio.sleep(0.05)
        assert row.status == OutboxStatus.DEAD
        assert len(stub.called("sendMessage")) == attempts  # the notice was not even tried


async def test_rate_limited_replies_are_delivered_after_retry_after(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    stub.fail("sendMessage", too_many_requests(retry_after=1), times=3)
    async with telegram(embedded_app, stub, telegram_library=library) as (
        _,
        handled,
    ):
        users = [TgUser(stub, handled, chat) for chat in (505, 506, 507)]
        await asyncio.gather(*(user.say("/help") for user in users))
    for user in users:
        assert len(user.last) == 1 and user.last[0].buttons  # delivered once, after the wait
    calls = stub.called("sendMessage")
    # The three waits overlap (one user's wait holds up no other): every refusal comes
    # before any retry, rather than refusal, retry, refusal, retry…
    assert [call.status for call in calls] == [429] * 3 + [200] * 3
    for chat in ("505", "506", "507"):  # …and each retry waited retry_after
        refused, sent = (call.at for call in calls if call.chat_id == chat)
        assert sent - refused >= 1.0


async def test_flood_guard_warns_once_then_drops_without_stalling_others(
    app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(app, stub, telegram_library=library, flood_limit=3) as (_, handled):
        spam = [stub.user_says(508, f"/help {n}") for n in range(6)]
        await handled.wait(*spam)
        other = TgUser(stub, handled, 509)
        await other.say("/help")
    texts = [call.text for call in stub.sent(508)]
    assert len(texts) == 4
    assert texts[3] == "您发送得太快了，请稍候片刻再试。"
    assert len(other.last) == 1


async def test_a_flooding_users_file_and_button_press_are_dropped_before_any_download(
    app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(app, stub, telegram_library=library, flood_limit=3) as (_, handled):
        spam = [stub.user_says(513, f"/help {n}") for n in range(4)]  # the 4th: the warning
        await handled.wait(*spam)
        await app.services.state.save("telegram:513", {"mode": "upload:BDB-2026-9"})
        upload = stub.user_uploads(513, "营业执照.pdf", b"%PDF-1.4 test", "application/pdf")
        press = stub.user_presses(513, 1, "m:apply")
        await handled.wait(upload, press)
    assert stub.called("getFile") == []
    assert len(stub.sent(513)) == 4  # three answers and one warning, nothing after
    assert len(stub.called("answerCallbackQuery")) == 1  # the press is still acknowledged


@pytest.mark.parametrize("backend", ["production"])
async def test_a_free_text_question_costs_two_redis_commands(
    app: App, stub: BotApiStub, library: str
) -> None:
    """Flood window + lock + load in one script, save + unlock in another: as many round
    trips as a bare aiogram bot with RedisStorage (read the state, write it)."""
    redis = app.services.state.redis
    assert redis is not None
    commands: list[str] = []
    real = redis.execute_command

    async def counted(*args, **options):  # type: ignore[no-untyped-def]
        commands.append(str(args[0]))
        return await real(*args, **options)

    async with telegram(app, stub, telegram_library=library) as (_, handled):
        user = TgUser(stub, handled, 514)
        await user.say("办理施工许可需要哪些材料？")  # the scripts are loaded into Redis
        redis.execute_command = counted  # type: ignore[method-assign]
        (answer,) = await user.say("施工许可证怎么办理？")
        redis.execute_command = real  # type: ignore[method-assign]
    assert answer.text
    assert commands == ["EVALSHA", "EVALSHA"]


async def test_a_slow_user_does_not_block_others_and_each_user_stays_in_order(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    release = asyncio.Event()
    seen: list[str] = []
    real = embedded_app.router.handle

    async def handle(event, flood=None, opened=None):  # type: ignore[no-untyped-def]
        seen.append(f"{event.user.chat_id}:{event.text}")
        if event.text == "slow":
            opened()  # as the router does once the conversation is open
            await release.wait()
        return await real(event, flood)

    async with telegram(embedded_app, stub, telegram_library=library) as (
        service,
        handled,
    ):
        service.channel.router.handle = handle  # type: ignore[method-assign]
        service.channel.typing_after = 0.05
        first = stub.user_says(510, "slow")
        after = [stub.user_says(510, f"/help {n}") for n in range(3)]
        other = TgUser(stub, handled, 511)
        await other.say("/help")  # answered while 510 is still busy
        assert stub.sent(510) == []
        await asyncio.sleep(0.1)
        assert stub.called("sendChatAction")  # 510 sees "typing…"
        release.set()
        await handled.wait(first, *after)
    assert [s for s in seen if s.startswith("510:")] == [
        "510:slow",
        "510:/help 0",
        "510:/help 1",
        "510:/help 2",
    ]


async def test_shutdown_finishes_updates_in_hand(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    started = asyncio.Event()
    real = embedded_app.router.handle

    async def handle(event, flood=None, opened=None):  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.sleep(0.3)
        return await real(event, flood, opened)

    async with telegram(embedded_app, stub, telegram_library=library) as (
        service,
        _,
    ):
        service.channel.router.handle = handle  # type: ignore[method-assign]
        stub.user_says(512, "/help")
        await asyncio.wait_for(started.wait(), 5)
    # `telegram` stopped the service on exit: the reply was still sent.
    assert len(stub.sent(512)) == 1


async def test_webhook_checks_the_secret_and_processes_updates(
    embedded_app: App, stub: BotApiStub, library: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings(
        embedded_app,
        stub,
        webhook_url="https://bot.example.com/tg/hook",
        webhook_secret="s3cret-token",
        webhook_host="127.0.0.1",
        webhook_port=0,
        telegram_library=library,
    )
    async with running(settings, embedded_app, run_worker=False) as service:
        handled = Handled(service.channel)
        assert service.webhook_address is not None
        host, port = service.webhook_address
        url = f"http://{host}:{port}/tg/hook"
        update = {
            "update_id": 9001,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": 513, "type": "private"},
                "from": {"id": 513, "is_bot": False, "first_name": "用户"},
                "text": "/start",
            },
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as response:
                assert response.status == 401
            headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 401
            assert stub.sent(513) == []
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
            async with http.post(url, data=b"{not json", headers=headers) as response:
                assert response.status == 400
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 200
            await handled.wait(9001)
            async with http.get(f"http://{host}:{port}/healthz") as response:
                assert response.status == 200
            for body in (b"{not json", b"[1, 2]", b'{"no_update_id": 1}', b"\xff\xfe"):
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 400
    (webhook,) = stub.called("setWebhook")
    assert webhook.params["url"] == "https://bot.example.com/tg/hook"
    assert webhook.params["secret_token"] == "s3cret-token"
    (reply,) = stub.sent(513)
    assert "帮代办" in reply.text and reply.buttons
    refused = [r for r in caplog.records if "webhook body refused" in r.getMessage()]
    assert len(refused) == 5 and not any(r.exc_info for r in refused)  # every bad body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_restart_mid_application_resumes_on_the_embedded_default(
    embedded_app: App, stub: BotApiStub, library: str
) -> None:
    async with telegram(embedded_app, stub, telegram_library=library) as (_, handled):
        user = TgUser(stub, handled, 509)
        await user.say("/apply")
        for label in ("一般项目", "是，已在新区立项", "不是房地产"):
            await user.press(label)
        await user.say(GOOD_ANSWERS["company"])
        assert "第 5/11 步" in user.text
    await embedded_app.close()  # the fixture's close afterwards finds it closed already
    again = await build_app(embedded_app.settings)
    try:
        async with telegram(again, stub, telegram_library=library) as (_, handled):
            user = TgUser(stub, handled, 509)
            await user.press("跳过")  # on the message sent before the restart
            assert "第 6/11 步" in user.text and "已过期" not in user.text
            await user.say(GOOD_ANSWERS["project_name"])
            assert "第 7/11 步" in user.text and "投资项目统一代码" in user.text
    finally:
        await again.close()
