"""Rows written behind (the 服务统计 count of each consultation): a burst is one transaction, and
stopping the process loses none of them, not even a batch that is being written."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import App
from storage.models import ConsultationRecord, utcnow


def record(outcome: str = "answer") -> dict[str, object]:
    return {"channel": "web", "outcome": outcome, "at": utcnow()}


async def consultations(app: App) -> int:
    async with app.services.db.sessions() as session:
        return int(await session.scalar(select(func.count(ConsultationRecord.id))) or 0)


async def hold_writes(app: App) -> AsyncConnection:
    """Another connection that keeps every INSERT into the table waiting until it ends."""
    conn = await app.services.db.engine.connect()
    if app.services.db.is_sqlite:
        await conn.execute(text("BEGIN IMMEDIATE"))  # the database's one write lock
    else:
        await conn.execute(text("LOCK TABLE consultations IN SHARE MODE"))
    return conn


async def test_a_burst_is_written_together_a_moment_later(app: App) -> None:
    behind = app.services.db.behind
    before = await consultations(app)
    for _ in range(3):
        behind.add(ConsultationRecord, record())
    assert await consultations(app) == before  # nothing written while the enterprise waits
    for _ in range(200):
        if await consultations(app) == before + 3:
            break
        await asyncio.sleep(0.02)
    assert await consultations(app) == before + 3


async def test_closing_waits_for_the_batch_being_written(app: App) -> None:
    behind = app.services.db.behind
    before = await consultations(app)
    blocker = await hold_writes(app)
    try:
        behind.add(ConsultationRecord, record("answer"))
        behind.add(ConsultationRecord, record("route"))
        await asyncio.sleep(behind.interval + 0.3)  # past the pause: the batch waits to insert
        closing = asyncio.create_task(behind.close())
        await asyncio.sleep(0.2)
        assert not closing.done()  # waiting for the batch, which waits for the lock
    finally:
        await blocker.rollback()
        await blocker.close()
    await closing
    assert await consultations(app) == before + 2


async def test_closing_during_the_pause_writes_at_once(app: App) -> None:
    behind = app.services.db.behind
    behind.interval = 3600  # the pause would outlast the test: closing must not wait for it
    before = await consultations(app)
    behind.add(ConsultationRecord, record())
    await asyncio.wait_for(behind.close(), 30)
    assert await consultations(app) == before + 1
