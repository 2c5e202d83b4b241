"""Fixtures: the core on the embedded defaults (SQLite + memory) and on PostgreSQL + Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from bot.app import App, build_app
from bot.config import load_settings
from storage.db import Database
from storage.models import Base
from storage.seed import seed_all
from storage.state import MemoryStateStore, RedisStateStore, StateStore
from support import Chat

POSTGRES_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"
BACKENDS = ["embedded", "production"]


def _unavailable(what: str, exc: BaseException) -> None:
    """A missing server fails the run in CI and skips elsewhere."""
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


_migrated: set[str] = set()


async def postgres_database() -> Database:
    """The test database, migrated once per run with the real migrations, then emptied."""
    db = Database(POSTGRES_URL, pool_size=5)
    try:
        await db.ping()
    except Exception as exc:
        await db.dispose()
        _unavailable("PostgreSQL", exc)
    if POSTGRES_URL not in _migrated:
        await db.downgrade("base")
        await db.upgrade()
        _migrated.add(POSTGRES_URL)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
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


@pytest.fixture
async def app(backend: str, tmp_path: Path) -> AsyncIterator[App]:
    """The whole core wired as in production, on the requested backend, seeded."""
    prefix = f"bdbtest:{uuid.uuid4().hex[:8]}:"
    state: StateStore
    if backend == "production":
        db = await postgres_database()
        await db.dispose()
        state = await redis_state(prefix)
        settings = load_settings(
            database_url=POSTGRES_URL, redis_url=REDIS_URL, files_dir=tmp_path / "files"
        )
    else:
        state = MemoryStateStore()
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "files"
        )
    if backend == "production":
        db = Database(POSTGRES_URL)
        async with db.transaction() as session:
            await seed_all(session)
        await db.dispose()
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
