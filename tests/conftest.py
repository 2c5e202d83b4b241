"""Fixtures: the core on the embedded defaults (SQLite + memory) and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import App, build_app
from bot.config import load_settings
from storage.db import Database
from storage.models import Base
from storage.seed import seed_all
from storage.state import MemoryStateStore, RedisStateStore, StateStore
from support import Chat

SERVER_URL = os.environ.get("TEST_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432")
# One database per test run, so parallel runs (or a benchmark) never share tables.
POSTGRES_URL = f"{SERVER_URL}/bdb_test_{os.getpid()}"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"
BACKENDS = ["embedded", "production"]


def _unavailable(what: str, exc: BaseException) -> None:
    """A missing server fails the run in CI and skips elsewhere."""
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def _admin(sql: str) -> None:
    engine = create_async_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _blocking(coro: Coroutine[object, object, None]) -> None:
    """Run a coroutine to completion on its own loop, even when called from a running one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create this run's database and apply the real migrations to it; drop it at the end."""
    name = POSTGRES_URL.rsplit("/", 1)[1]
    try:
        _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}"'))
        _blocking(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)

    async def migrate() -> None:
        db = Database(POSTGRES_URL)
        await db.upgrade()
        await db.dispose()

    _blocking(migrate())
    yield POSTGRES_URL
    _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def postgres_database(url: str) -> Database:
    """The run's database, emptied."""
    db = Database(url, pool_size=5)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        # The audit log refuses TRUNCATE to the application; the tests' superuser steps past
        # its triggers for this one statement (replica mode fires no ordinary trigger).
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return db


async def redis_state(prefix: str) -> RedisStateStore:
    store = RedisStateStore(REDIS_URL, prefix=prefix, max_connections=20)
    try:
        await store.redis.ping()
    except Exception as exc:
        await store.close()
        _unavailable("Redis", exc)
    return store


async def _drop_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["aiogram", "ptb"])
def library(request: pytest.FixtureRequest) -> str:
    """TELEGRAM_LIBRARY: the Telegram end-to-end tests run on each stack."""
    return str(request.param)


@pytest.fixture
async def app(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[App]:
    """The whole core wired as in production, on the requested backend, seeded."""
    prefix = f"bdbtest:{uuid.uuid4().hex[:8]}:"
    state: StateStore
    if backend == "production":
        url = request.getfixturevalue("postgres_url")
        db = await postgres_database(url)
        async with db.transaction() as session:
            await seed_all(session)
        await db.dispose()
        state = await redis_state(prefix)
        settings = load_settings(database_url=url, redis_url=REDIS_URL, files_dir=tmp_path / "f")
    else:
        state = MemoryStateStore()
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "f"
        )
    built = await build_app(settings, state=state)
    yield built
    await built.close()
    if backend == "production":
        await _drop_prefix(prefix)


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app.router)


@pytest.fixture
async def embedded_app(tmp_path: Path) -> AsyncIterator[App]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "files"
    )
    built = await build_app(settings)
    yield built
    await built.close()


@pytest.fixture
def cjk_font() -> Path:
    """The CJK font the PDF form needs; its absence fails the run in CI and skips elsewhere."""
    from dialogs.printable import find_cjk_font

    font = find_cjk_font()
    if font is None:
        _unavailable("A CJK font (apt-get install fonts-wqy-microhei)", FileNotFoundError())
    assert font is not None
    return font
