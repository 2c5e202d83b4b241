"""The outbox delivery worker: fake sender on both backends, two workers on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.channels.telegram import CHANNEL, TelegramSender, build_bot
from bot.outbox import OutboxWorker, Rejected, RetryLater, Unreachable, WorkerConfig
from botapi_stub import BotApiStub, too_many_requests
from chat.events import Button, Document
from storage import applicants, outbox
from storage.db import Database
from storage.models import Applicant, OutboxMessage, OutboxStatus
from storage.outbox import Recipient
from tgchat import bot_settings, stub_server


class FakeSender:
    """Records sends; `failures[chat_id]` lists exceptions to raise first, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, list[list[Button]], Document | None]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.delivered = asyncio.Event()

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        queue = self.failures.get(chat_id)
        if queue:
            raise queue.pop(0)
        self.sent.append((chat_id, text, buttons, document))
        self.delivered.set()


async def enqueue(app: App, *rows: tuple[str, str], **extra: object) -> None:
    async with app.services.db.transaction() as session:
        for chat_id, text in rows:
            outbox.enqueue(
                session, Recipient(CHANNEL, chat_id), text, key=f"{chat_id}:{text}", **extra
            )  # type: ignore[arg-type]


async def rows(app: App) -> list[OutboxMessage]:
    async with app.services.db.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def make_due(app: App) -> None:
    """Skip the backoff wait: every pending row is due now."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    async with app.services.db.transaction() as session:
        await session.execute(update(OutboxMessage).values(next_attempt_at=past))


def worker(app: App, sender: FakeSender, **config: object) -> OutboxWorker:
    async def resolve(spec: dict[str, object]) -> Document | None:
        return Document(f"{spec['case']}.docx", b"PK-form", "application/msword")

    return OutboxWorker(
        app.services.db,
        sender,
        CHANNEL,
        resolve,
        WorkerConfig(**config),  # type: ignore[arg-type]
    )


async def test_rows_are_sent_with_buttons_and_documents_and_marked_sent(app: App) -> None:
    buttons = [[{"label": "查看", "data": "c:open:BDB-2026-000001"}]]
    await enqueue(app, ("1", "受理通知"), buttons=buttons)
    await enqueue(app, ("2", "申请表"), document={"render": "application_form", "case": "N1"})
    async with app.services.db.transaction() as session:
        outbox.enqueue(session, Recipient("console", "3"), "别的渠道", key="console")
    sender = FakeSender()
    assert await worker(app, sender).run_once() == 2
    assert await worker(app, sender).run_once() == 0
    assert sender.sent[0][:3] == ("1", "受理通知", [[Button("查看", "c:open:BDB-2026-000001")]])
    assert sender.sent[1][3] == Document("N1.docx", b"PK-form", "application/msword")
    statuses = [(r.chat_id, r.status) for r in await rows(app)]
    assert statuses == [("1", "sent"), ("2", "sent"), ("3", "pending")]


async def test_each_chat_gets_its_notices_in_order_one_per_batch(app: App) -> None:
    await enqueue(app, ("1", "a"), ("1", "b"), ("2", "c"), ("1", "d"))
    sender = FakeSender()
    assert await worker(app, sender).run_once() == 2  # "a" and "c"; "b" waits for "a"
    await worker(app, sender).run_once()
    await worker(app, sender).run_once()
    assert [text for chat, text, *_ in sender.sent if chat == "1"] == ["a", "b", "d"]


async def test_rate_limit_reschedules_without_counting_an_attempt(app: App) -> None:
    await enqueue(app, ("1", "a"))
    sender = FakeSender()
    sender.failures["1"] = [RetryLater(30)]
    await worker(app, sender).run_once()
    (row,) = await rows(app)
    assert row.status == "pending" and row.attempts == 0
    assert row.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=25)
    assert await worker(app, sender).run_once() == 0  # not due yet
    await make_due(app)
    await worker(app, sender).run_once()
    assert [r.status for r in await rows(app)] == ["sent"]


async def test_transient_failures_back_off_and_die_after_max_attempts(app: App) -> None:
    await enqueue(app, ("1", "a"))
    sender = FakeSender()
    sender.failures["1"] = [ConnectionError("reset")] * 8
    await worker(app, sender).run_once()
    (row,) = await rows(app)
    assert row.status == "pending" and row.attempts == 1 and "ConnectionError" in row.last_error
    assert row.next_attempt_at > dt.datetime.now(dt.UTC)
    for _ in range(7):
        await make_due(app)
        await worker(app, sender).run_once()
    (row,) = await rows(app)
    assert row.status == "dead" and row.attempts == 8
    assert sender.sent == []


async def test_rejected_message_falls_back_to_plain_text_then_to_an_apology(app: App) -> None:
    await enqueue(app, ("1", "<b>a</b> &amp; b"), ("2", "c"), ("3", "d"))
    sender = FakeSender()
    sender.failures["1"] = [Rejected("can't parse entities")]
    sender.failures["2"] = [Rejected("can't parse entities"), Rejected("message is too long")]
    sender.failures["3"] = [Rejected("bad"), Rejected("bad"), Rejected("bad")]
    runner = worker(app, sender)
    await runner.run_once()
    assert [r.status for r in await rows(app)] == ["sent", "dead", "dead"]
    shown = {chat: text for chat, text, *_ in sender.sent}
    assert shown["1"] == "a &amp; b"  # the same words, without the markup
    assert "未能显示" in shown["2"] and "/cases" in shown["2"]  # where to look instead
    assert "3" not in shown
    assert (runner.fallbacks, runner.apologies) == (1, 1)


async def test_blocked_recipient_is_marked_unreachable_and_skipped_afterwards(app: App) -> None:
    async with app.services.db.transaction() as session:
        await applicants.get_or_create(session, CHANNEL, "7")
    await enqueue(app, ("7", "a"), ("7", "b"), ("8", "c"))
    sender = FakeSender()
    sender.failures["7"] = [Unreachable("Forbidden: bot was blocked by the user")]
    await worker(app, sender).run_once()
    await worker(app, sender).run_once()
    assert [(r.chat_id, r.status) for r in await rows(app)] == [
        ("7", "dead"),
        ("7", "dead"),
        ("8", "sent"),
    ]
    assert [chat for chat, *_ in sender.sent] == ["8"]  # "b" was never tried
    async with app.services.db.sessions() as session:
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "7"))
    assert applicant is not None and applicant.unreachable


async def test_worker_loop_stops_when_asked(app: App) -> None:
    await enqueue(app, ("1", "a"))
    sender = FakeSender()
    stop = asyncio.Event()
    task = asyncio.create_task(worker(app, sender, poll_interval=0.02).run(stop))
    await asyncio.wait_for(sender.delivered.wait(), 2)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert [r.status for r in await rows(app)] == ["sent"]


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    async with stub_server() as server:
        yield server


@pytest.mark.parametrize("backend", ["production"])
async def test_two_workers_deliver_every_row_to_the_bot_api_exactly_once_in_order(
    app: App, stub: BotApiStub
) -> None:
    chats = [str(600 + n) for n in range(10)]
    await enqueue(app, *[(chat, f"通知 {chat}-{n}") for n in range(6) for chat in chats])
    stub.fail("sendMessage", too_many_requests(retry_after=1), chat_id="603")
    settings = bot_settings(app, stub)
    config = WorkerConfig(batch_size=4, poll_interval=0.02)
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    bots, databases = [], []
    for _ in range(2):  # two processes' worth: own pool, own bot session
        db = Database(app.settings.database_url, pool_size=2)
        bot = build_bot(settings)
        databases.append(db)
        bots.append(bot)
        loop = OutboxWorker(db, TelegramSender(bot), CHANNEL, None, config)
        workers.append(asyncio.create_task(loop.run(stop)))
    try:
        await stub.wait_until(lambda: len(stub.sent(method="sendMessage")) >= 60, 10)
        await asyncio.sleep(0.2)  # anything sent twice would show up now
    finally:
        stop.set()
        await asyncio.gather(*workers)
        for bot in bots:
            await bot.close()
        for db in databases:
            await db.dispose()
    texts = [call.text for call in stub.sent(method="sendMessage")]
    assert len(texts) == 60 and len(set(texts)) == 60
    for chat in chats:
        mine = [call.text for call in stub.sent(chat, "sendMessage")]
        assert mine == [f"通知 {chat}-{n}" for n in range(6)]
    assert {r.status for r in await rows(app)} == {OutboxStatus.SENT}
