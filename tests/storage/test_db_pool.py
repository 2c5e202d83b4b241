"""The PostgreSQL pool: a transaction costs its statements and BEGIN/COMMIT, nothing more, and
a pooled connection that the server closed is never handed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from storage.db import Database
from storage.models import Applicant


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, pool_size=1)
    yield database
    await database.dispose()


async def sent_on(db: Database) -> list[str]:
    """The simple-protocol queries (BEGIN, COMMIT, ROLLBACK: asyncpg logs no prepared
    statement) that the pool's connection sends from now on."""
    sent: list[str] = []
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        driver.add_query_logger(lambda record: sent.append(record.query.strip(" ;").upper()))
    return sent


async def test_a_transaction_sends_begin_and_commit_and_no_ping(db: Database) -> None:
    sent = await sent_on(db)
    async with db.transaction() as session:
        await session.scalar(select(Applicant.id).limit(1))
    # No pre-ping before the work (asyncpg's is BEGIN, ";", ROLLBACK).
    assert sent == ["BEGIN", "COMMIT"]


async def test_a_connection_the_server_closed_is_replaced_at_checkout(db: Database) -> None:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        pid = driver.get_server_pid()
    closed = asyncio.Event()  # set when the loop has read the server's goodbye
    driver.add_termination_listener(lambda _: closed.set())
    admin = Database(db.url, pool_size=1)
    try:
        async with admin.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()
    await asyncio.wait_for(closed.wait(), 60)  # bounded: a broken test must not hang the run
    assert driver.is_closed()
    async with db.sessions() as session:  # no error: a fresh connection
        assert await session.scalar(text("SELECT pg_backend_pid()")) != pid
