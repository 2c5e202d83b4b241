"""Two processes' worth of delivery and scheduling on one database: nothing twice.

Each "process" here has its own connection pool and state store (and on PostgreSQL its own
Redis client), as two `bangdaiban worker` processes, or `run` plus `worker`, would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.delivery import Delivery
from bot.outbox import WorkerConfig
from chat.events import Button, Document
from conftest import redis_state
from handlers.context import Services
from storage import outbox
from storage.db import Database
from storage.models import Lease, OutboxMessage, OutboxStatus, utcnow
from storage.outbox import Recipient
from storage.state import MemoryStateStore, StateStore

CHANNEL = "telegram"


class Sent:
    """Every send of every process: (process, chat, text).

    With `meet`, each process's first send waits until the other process is sending too:
    both can hold a batch at once only if they share the outbox (SKIP LOCKED)."""

    def __init__(self, meet: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.meet = meet
        self.sending = {name: asyncio.Event() for name in ("p0", "p1")}

    def sender(self, process: str) -> RecordingSender:
        return RecordingSender(self, process)

    def copies(self) -> Counter[tuple[str, str]]:
        return Counter((chat, text) for _, chat, text in self.calls)


class RecordingSender:
    def __init__(self, sent: Sent, process: str) -> None:
        self.sent, self.process = sent, process

    async def send(
        self, chat_id: str, text: str, buttons: list[list[Button]], document: Document | None
    ) -> None:
        await asyncio.sleep(0.002)  # a round trip: lets the other process interleave
        if self.sent.meet:
            self.sent.sending[self.process].set()
            other = next(e for name, e in self.sent.sending.items() if name != self.process)
            with contextlib.suppress(TimeoutError):  # then the assertion on who sent fails
                await asyncio.wait_for(other.wait(), 20)
        self.sent.calls.append((self.process, chat_id, text))


async def process_services(app: App, prefix: str) -> Services:
    """The app's services as another process would have them: own pool, own state store."""
    state: StateStore
    if app.services.db.is_sqlite:
        state = MemoryStateStore()
    else:
        state = await redis_state(prefix)
    return dataclasses.replace(
        app.services, db=Database(app.settings.database_url, pool_size=3), state=state
    )


@pytest.fixture
async def processes(app: App) -> AsyncIterator[list[Services]]:
    prefix = getattr(app.services.state, "prefix", "")
    made = [await process_services(app, prefix) for _ in range(2)]
    yield made
    for services in made:
        await services.state.close()
        await services.db.dispose()


async def enqueue(app: App, count: int, tag: str) -> None:
    async with app.services.db.transaction() as session:
        for n in range(count):
            chat = str(100 + n % (count // 2 or 1))  # two notices for most chats
            outbox.enqueue(session, Recipient(CHANNEL, chat), f"{tag}-{n}", key=f"{tag}-{n}")


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.02)


async def pending(app: App) -> int:
    async with app.services.db.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING)
        )
        return len(rows.all())


def delivery(
    services: Services, sent: Sent, name: str, ticks: list[tuple[str, dt.datetime]]
) -> Delivery:
    async def tick_job(_: Services) -> int:
        ticks.append((name, utcnow()))
        return 0

    return Delivery(
        services,
        {CHANNEL: sent.sender(name)},
        config=WorkerConfig(poll_interval=0.02),
        scheduler_interval=0.05,
        delivery_lease=60.0,  # longer than any wait below: only a release or a crash ends it
        holder=name,
        jobs=(tick_job,),
    )


async def test_two_workers_and_two_schedulers_send_and_tick_once(
    app: App, processes: list[Services]
) -> None:
    shared = not app.services.db.is_sqlite  # PostgreSQL + Redis: both deliver (SKIP LOCKED)
    sent, ticks = Sent(meet=shared), []
    deliveries = [delivery(s, sent, f"p{n}", ticks) for n, s in enumerate(processes)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in deliveries]
    try:
        await enqueue(app, 120, "a")

        async def all_sent_and_ticked() -> bool:  # three ticks: a second leader would show
            return await pending(app) == 0 and len(ticks) >= 3

        await until(all_sent_and_ticked)
        await asyncio.sleep(0.3)  # a duplicate would show by now
        # While both run; once the leader stops cleanly the other may take over (as it should).
        running = list(ticks)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(sent.calls) == 120
    assert max(sent.copies().values()) == 1
    by_process = Counter(process for process, _, _ in sent.calls)
    if shared:
        assert set(by_process) == {"p0", "p1"}
    else:  # SQLite: one delivers, the other waits for the lease
        assert len(by_process) == 1
    leaders = {name for name, _ in running}
    assert len(leaders) == 1 and len(running) >= 3
    async with app.services.db.sessions() as session:
        assert (await session.scalars(select(Lease))).all() == []  # released on stop


async def test_the_waiting_process_takes_over_when_the_leader_stops(
    app: App, processes: list[Services]
) -> None:
    sent, ticks = Sent(), []
    first, second = (delivery(s, sent, f"p{n}", ticks) for n, s in enumerate(processes))
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    leader = asyncio.create_task(first.run(stop_first))

    async def first_ticked() -> bool:
        return bool(ticks)

    await until(first_ticked)
    follower = asyncio.create_task(second.run(stop_second))
    try:
        await asyncio.sleep(0.3)
        assert {name for name, _ in ticks} == {"p0"}
        stop_first.set()
        await leader
        await enqueue(app, 20, "b")

        async def second_ticked_and_sent() -> bool:
            return any(name == "p1" for name, _ in ticks) and await pending(app) == 0

        await until(second_ticked_and_sent)
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(leader, follower)
    assert {process for process, _, _ in sent.calls} == {"p1"}
    assert max(sent.copies().values()) == 1


async def test_a_crashed_leader_is_replaced_once_its_lease_expires(
    app: App, processes: list[Services]
) -> None:
    """The leader dies without releasing anything (kill -9): the other process waits for its
    leases to expire, then ticks the scheduler and, where one process delivers, delivers."""
    sent, ticks = Sent(), []
    first, second = (delivery(s, sent, f"p{n}", ticks) for n, s in enumerate(processes))
    for d in (first, second):  # a short delivery lease; the scheduler's is 10 s at least
        for lease in d.leases:
            if lease.name != "scheduler":
                lease.seconds = 1.0
    crashed = asyncio.create_task(first.run(asyncio.Event()))

    async def first_ticked() -> bool:
        return bool(ticks)

    await until(first_ticked)
    for lease in first.leases:  # a killed process releases nothing
        lease.release = _nothing  # type: ignore[method-assign]
    crashed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await crashed
    async with app.services.db.sessions() as session:
        held = {lease.name: lease for lease in (await session.scalars(select(Lease))).all()}
    assert {lease.holder for lease in held.values()} == {"p0"}  # still held by the dead one
    await enqueue(app, 20, "c")
    stop = asyncio.Event()
    follower = asyncio.create_task(second.run(stop))
    try:

        async def second_ticked_and_sent() -> bool:
            return any(name == "p1" for name, _ in ticks) and await pending(app) == 0

        await until(second_ticked_and_sent, seconds=60)
    finally:
        stop.set()
        await follower
    took_over = min(at for name, at in ticks if name == "p1")
    assert utc(took_over) >= utc(held["scheduler"].expires_at)  # not while the lease ran
    assert {process for process, _, text in sent.calls if text.startswith("c-")} == {"p1"}
    assert max(sent.copies().values()) == 1


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive UTC times, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


async def _nothing() -> None:
    return None
