"""A worker process killed mid-batch loses nothing and duplicates nothing (PostgreSQL).

The workers are real `python -m bot worker` processes talking to the Bot API stub in this
process. The stub accepts one token per worker process, so it can hold one worker's sends
unanswered; that worker is then SIGKILLed with a batch in hand.

The residual at-least-once window: a crash after Telegram accepted a message but before the
worker's COMMIT leaves the row PENDING, and it is sent again. A worker commits once per batch
(after every send of the batch has been answered), so these tests kill it while its next
batch is held unanswered: the previous batch is committed (the worker claimed the next one
only after committing), and nothing of the held batch reached a user. A duplicate can then
only come from a real bug — a row sent by two workers, or a committed row sent again — and
the stub's record (counted by chat and text, each notice's text is unique) would show it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.channels.telegram import CHANNEL
from bot.outbox import WorkerConfig
from botapi_stub import TOKEN, BotApiStub
from conftest import REDIS_URL
from handlers.announcements import queue
from services import notify
from storage import roster
from storage.models import Applicant, OutboxMessage, OutboxStatus
from tgchat import stub_server

ROOT = Path(__file__).resolve().parents[2]
BATCH = WorkerConfig().batch_size  # what `bangdaiban worker` claims at a time
START_TIMEOUT = 40.0  # a worker imports aiogram and builds the app: ~10 s on a small machine

pytestmark = pytest.mark.parametrize("backend", ["production"])


class Worker:
    """One `python -m bot worker` process with its own bot token."""

    def __init__(self, process: asyncio.subprocess.Process, token: str, log: Path) -> None:
        self.process, self.token, self.log = process, token, log

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)


@asynccontextmanager
async def workers(
    app: App, stub: BotApiStub, tmp_path: Path, names: list[str]
) -> AsyncIterator[list[Worker]]:
    """Start worker processes (tokens differ only so the stub can tell them apart)."""
    started = []
    for name in names:
        token = f"{TOKEN.split(':')[0]}:TEST-worker-{name}"
        stub.add_token(token)
        env = {
            **os.environ,
            "DATABASE_URL": app.settings.database_url,
            "REDIS_URL": REDIS_URL,
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_URL": stub.base_url,
            "SEND_RATE_PER_SECOND": "0",  # the stub has no flood limit: deliver at full speed
            "FILES_DIR": str(tmp_path / "files"),
            "LOG_LEVEL": "WARNING",
        }
        log = tmp_path / f"worker-{name}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "worker",
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        started.append(Worker(process, token, log))
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            try:
                await asyncio.wait_for(worker.process.wait(), 15)
            except TimeoutError:
                worker.kill()
                await worker.process.wait()
            if worker.process.returncode not in (0, -signal.SIGKILL):
                print(worker.log.read_text(errors="replace"))


async def wait_for(condition: Callable[[], bool], stub: BotApiStub, seconds: float) -> None:
    await stub.wait_until(condition, seconds)


async def count_rows(app: App, status: OutboxStatus) -> int:
    async with app.services.db.sessions() as session:
        query = select(func.count()).where(OutboxMessage.status == status)
        return int(await session.scalar(query) or 0)


async def until_all_sent(app: App, total: int, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await count_rows(app, OutboxStatus.SENT) >= total:
                return
            await asyncio.sleep(0.2)


async def add_applicants(app: App, chats: list[str], subscribed: bool) -> list[Applicant]:
    people = [
        Applicant(channel=CHANNEL, chat_id=chat, subscribed=subscribed, topics=[]) for chat in chats
    ]
    async with app.services.db.transaction() as session:
        session.add_all(people)
    return people


def delivered(stub: BotApiStub, chats: set[str]) -> Counter[tuple[str, str]]:
    """Messages the users got, by (chat, text): a duplicate counts 2."""
    return Counter((call.chat_id, call.text) for call in stub.sent() if call.chat_id in chats)


async def test_broadcast_survives_a_killed_worker(app: App, tmp_path: Path) -> None:
    chats = [str(8_100_000 + n) for n in range(2000)]
    await add_applicants(app, chats, subscribed=True)
    async with app.services.db.sessions() as session:
        admin = await roster.staff_by_name(session, "陈晨")
    assert admin is not None
    queued = await queue(
        app.services.db.transaction, "政策解读", "正文", "subscribers", [], admin.id
    )
    assert queued is not None and queued[1] == 2000
    kill_after = 25 * BATCH  # 25 batches delivered and committed; the 26th is held

    async with stub_server() as stub:
        async with workers(app, stub, tmp_path, ["a"]) as (first,):
            stub.hold(first.token, after=kill_after)
            await wait_for(lambda: stub.held(first.token) > 0, stub, START_TIMEOUT)
            first.kill()
            await first.process.wait()
            stub.release(first.token, fail=True)  # what it was sending never arrived
        assert stub.accepted[first.token] == kill_after
        assert await count_rows(app, OutboxStatus.SENT) == kill_after  # the held batch rolled back

        async with workers(app, stub, tmp_path, ["b", "c"]) as restarted:
            await until_all_sent(app, 2000, START_TIMEOUT + 20)
            await asyncio.sleep(0.5)  # a duplicate would be sent by now
        got = delivered(stub, set(chats))
    assert sum(stub.accepted[w.token] for w in restarted) == 2000 - kill_after
    assert len(got) == 2000 and set(got.values()) == {1}
    assert {chat for chat, _ in got} == set(chats)
    assert await count_rows(app, OutboxStatus.PENDING) == 0


async def test_case_notices_survive_one_of_two_workers_killed_mid_batch(
    app: App, tmp_path: Path
) -> None:
    chats = [str(8_200_000 + n) for n in range(300)]
    people = await add_applicants(app, chats, subscribed=False)
    for step in range(4):  # case work happens over time: each step notifies every applicant
        async with app.services.db.transaction() as session:
            for n, person in enumerate(people):
                text = f"案件 BDB-2026-{n:06d} 进展 {step}"
                notify.to_applicant(session, person, text, key=f"case:{n}:step:{step}")
    kill_after = 3 * BATCH

    async with stub_server() as stub, workers(app, stub, tmp_path, ["a", "b"]) as (a, b):
        # b claims one batch and waits with it; a delivers three batches of first notices
        # (all to different chats, so every claim is a full batch), then holds its fourth.
        stub.hold(b.token)
        stub.hold(a.token, after=kill_after)
        await wait_for(lambda: stub.held(a.token) > 0 and stub.held(b.token) > 0, stub, 60)
        a.kill()
        await a.process.wait()
        stub.release(a.token, fail=True)
        stub.release(b.token)  # b's batch goes through, and b delivers the rest
        await until_all_sent(app, 1200, 30)
        await asyncio.sleep(0.5)
        got = delivered(stub, set(chats))
        assert stub.accepted[a.token] == kill_after
    assert len(got) == 1200 and set(got.values()) == {1}
    for n, chat in enumerate(chats[:50]):
        texts = [call.text for call in stub.sent(chat)]
        assert texts == [f"案件 BDB-2026-{n:06d} 进展 {step}" for step in range(4)]
