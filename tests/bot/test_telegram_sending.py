"""Sending through the Bot API: edits in place, fallbacks, keyboards, failure mapping.

Every test runs on both stacks (TELEGRAM_LIBRARY=aiogram and ptb)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.channels.telegram import BotApi, BotApiUnavailable, TelegramSender, build_bot, keyboard
from bot.config import load_settings
from bot.outbox import Rejected, RetryLater, Unreachable
from botapi_stub import TOKEN, BotApiStub, bad_request, blocked, too_many_requests
from chat.events import Button, Document, Reply
from tgchat import stub_server

SERVER_ERROR = (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    async with stub_server() as server:
        yield server


@pytest.fixture(params=["aiogram", "ptb"])
async def bot(stub: BotApiStub, request: pytest.FixtureRequest) -> AsyncIterator[BotApi]:
    settings = load_settings(
        telegram_bot_token=TOKEN, telegram_api_url=stub.base_url, telegram_library=request.param
    )
    built = build_bot(settings)
    yield built
    await built.close()


def menu() -> list[list[Button]]:
    return [[Button("申请帮代办", "m:apply"), Button("我的申请", "m:cases")]]


async def test_replace_edits_the_pressed_message(stub: BotApiStub, bot: BotApi) -> None:
    sender = TelegramSender(bot)
    await sender.deliver("42", Reply("第 1 步", menu()), None)
    message_id = stub.sent("42")[0].params["message_id"]
    await sender.deliver("42", Reply("第 2 步", menu(), replace=True), message_id)
    edit = stub.sent("42")[-1]
    assert edit.method == "editMessageText" and str(edit.params["message_id"]) == str(message_id)
    assert edit.buttons[0]["callback_data"] == "m:apply"


@pytest.mark.parametrize("reason", ["not found", "not modified"])
async def test_edit_falls_back_to_a_new_message(stub: BotApiStub, bot: BotApi, reason: str) -> None:
    sender = TelegramSender(bot)
    await sender.deliver("42", Reply("同样的内容", menu()), None)
    message_id = stub.sent("42")[0].params["message_id"]
    target = message_id + 100 if reason == "not found" else message_id
    await sender.deliver("42", Reply("同样的内容", menu(), replace=True), target)
    assert [c.method for c in stub.called("editMessageText")] == ["editMessageText"]
    assert [c.method for c in stub.sent("42")] == ["sendMessage", "sendMessage"]


async def test_document_goes_with_caption_and_buttons(stub: BotApiStub, bot: BotApi) -> None:
    reply = Reply("申请表 <b>BDB-2026-000001</b>", menu(), Document("表.docx", b"PK..", "x/y"))
    await TelegramSender(bot).deliver("42", reply, edit_message_id=7)  # a file is never edited
    (call,) = stub.sent("42")
    assert call.method == "sendDocument" and call.files["document"] == ("表.docx", b"PK..")
    assert call.params["caption"] == "申请表 <b>BDB-2026-000001</b>"
    assert call.params["parse_mode"] == "HTML" and call.buttons


def test_callback_data_over_64_bytes_is_not_sent() -> None:
    markup = keyboard([[Button("好", "x" * 65), Button("也好", "m:menu")]])
    assert markup is not None
    assert [[b["callback_data"] for b in row] for row in markup["inline_keyboard"]] == [["m:menu"]]
    assert keyboard([]) is None


async def test_server_errors_are_retried_a_bounded_number_of_times(
    stub: BotApiStub, bot: BotApi
) -> None:
    sender = TelegramSender(bot, network_retries=2, backoff=0.01)
    stub.fail("sendMessage", SERVER_ERROR, times=2)
    await sender.deliver("42", Reply("你好"), None)
    assert len(stub.sent("42")) == 1
    stub.fail("sendMessage", SERVER_ERROR, times=3)
    with pytest.raises(BotApiUnavailable):
        await sender.deliver("42", Reply("你好"), None)
    assert len(stub.called("sendMessage")) == 6


async def test_outbox_send_maps_telegram_failures(stub: BotApiStub, bot: BotApi) -> None:
    sender = TelegramSender(bot)
    stub.fail("sendMessage", too_many_requests(7))
    with pytest.raises(RetryLater) as retry:
        await sender.send("42", "通知", [], None)
    assert retry.value.seconds == 7
    stub.fail("sendMessage", blocked())
    with pytest.raises(Unreachable):
        await sender.send("42", "通知", [], None)
    stub.fail("sendMessage", bad_request("message is too long"))
    with pytest.raises(Rejected):
        await sender.send("42", "通知", [], None)
    await sender.send("42", "通知", menu(), None)
    assert stub.sent("42")[0].buttons
