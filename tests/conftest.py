"""Fixtures: the core on the embedded defaults (SQLite + memory) and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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

if TYPE_CHECKING:  # the index (jieba, numpy) is imported where an app is built
    from services.faq_domain import CatalogItem
    from services.faq_index import FaqDoc, FaqIndex

SERVER_URL = os.environ.get("TEST_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432")
# One database per test process, so parallel runs, xdist workers (each its own process) and a
# benchmark never share tables.
POSTGRES_URL = f"{SERVER_URL}/bdb_test_{os.getpid()}"
# The seeded rows of the run's database, kept beside it so each test restores them in one call.
SEED_SCHEMA = "bdb_seed"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"
# `make test-fast` sets TEST_BACKENDS=embedded; CI and `make test` run both.
BACKENDS = os.environ.get("TEST_BACKENDS", "embedded,production").split(",")
if IN_CI and BACKENDS != ["embedded", "production"]:
    raise pytest.UsageError("CI runs both backends: unset TEST_BACKENDS")


# What `make test-fast` leaves out (-m "not slow"); `make test` runs everything. Modules that
# start the CLI or a browser as processes, the race trials, the FAQ report; single tests
# that wait for the real pace of Telegram or for a lease to expire.
SLOW_MODULES = {
    "tests/bot/test_console.py",
    "tests/bot/test_faq_cli.py",
    "tests/bot/test_lean_imports.py",
    "tests/bot/test_operator_mistakes.py",
    "tests/bot/test_worker_crash.py",
    "tests/bot/web/test_browser.py",
    "tests/bot/web/test_browser_safety.py",
    "tests/bot/web/test_staff_browser.py",
    "tests/domain/test_case_races.py",
    "tests/domain/test_key_project_races.py",
    "tests/handlers/test_faq_questions.py",
}
SLOW_TESTS = {
    "test_a_300_message_burst_stays_within_the_flood_limits_and_is_reported",
    "test_a_crashed_leader_is_replaced_once_its_lease_expires",
    "test_long_texts_and_refused_messages_all_reach_the_reader",
    "test_serve_command_answers_the_verification_and_stops_on_sigterm",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        module = item.path.relative_to(root).as_posix()
        if module in SLOW_MODULES or getattr(item, "originalname", item.name) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def missing(message: str) -> NoReturn:
    """Something a test needs is missing: that fails the run in CI and skips elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _unavailable(what: str, exc: BaseException) -> None:
    missing(f"{what} is not reachable: {exc}")


def require_tool(name: str, package: str) -> str:
    """The path of a command a test needs; its absence fails the run in CI (.ci/run installs
    `package`) and skips elsewhere."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (apt-get install {package})")
    return found


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


async def _snapshot_seed(url: str) -> None:
    """Seed the run's database once and keep a copy of every seeded row and sequence.

    `SELECT bdb_seed.restore()` then puts the database back to "migrated and seeded" in one
    round trip; seeding through the ORM for each test cost a second or more."""
    db = await postgres_database(url)
    try:
        async with db.transaction() as session:
            await seed_all(session)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SEED_SCHEMA} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {SEED_SCHEMA}"))
            statements: list[str] = []
            for table in Base.metadata.sorted_tables:
                await conn.execute(
                    text(f"CREATE TABLE {SEED_SCHEMA}.{table.name} AS TABLE public.{table.name}")
                )
                statements.append(f"DELETE FROM public.{table.name};")
                statements.append(
                    f"INSERT INTO public.{table.name} OVERRIDING SYSTEM VALUE"
                    f" SELECT * FROM {SEED_SCHEMA}.{table.name};"
                )
            sequences = await conn.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            )
            for (name,) in sequences.all():
                value, called = (
                    await conn.execute(text(f"SELECT last_value, is_called FROM public.{name}"))
                ).one()
                statements.append(f"PERFORM setval('public.{name}', {value}, {called});")
            # replica: no foreign-key triggers, so rows go out and back in any order.
            await conn.execute(
                text(
                    f"CREATE FUNCTION {SEED_SCHEMA}.restore() RETURNS void LANGUAGE plpgsql"
                    " SET session_replication_role = replica"
                    f" AS $$ BEGIN {' '.join(statements)} END $$"
                )
            )
    finally:
        await db.dispose()


async def restore_seeded(url: str) -> None:
    """The run's database as freshly migrated and seeded (see `postgres_seeded`)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"SELECT {SEED_SCHEMA}.restore()"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_seeded(postgres_url: str) -> str:
    """The run's database with the seed snapshot that `restore_seeded` puts back."""
    _blocking(_snapshot_seed(postgres_url))
    return postgres_url


@pytest.fixture(scope="session")
def embedded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file made once per process; each embedded test gets a copy."""
    path = tmp_path_factory.mktemp("embedded-template") / "bdb.db"

    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.upgrade()
        async with db.transaction() as session:
            await seed_all(session)
        await db.dispose()  # the last connection closing folds the WAL into the file

    _blocking(prepare())
    assert not path.with_name("bdb.db-wal").exists()
    return path


@contextmanager
def _shared_faq_index() -> Iterator[None]:
    """While a fixture builds an app, reuse the FAQ index of identical content.

    Building it costs about half a second per test. Only the start-up build is shared: a
    reload during a test (`faq import`) builds anew, so its tests still see a new index."""
    from services.faq_index import FaqIndex

    original = FaqIndex.build

    def build(
        docs: Iterable[FaqDoc],
        synonyms: Sequence[Sequence[str]] = (),
        *,
        items: Iterable[CatalogItem] = (),
        **options: Any,
    ) -> FaqIndex:
        docs, items = tuple(docs), tuple(items)
        if options:
            return original(docs, synonyms, items=items, **options)
        key = (docs, tuple(tuple(group) for group in synonyms), items)
        index = _FAQ_INDEXES.get(key)
        if index is None:
            index = _FAQ_INDEXES[key] = original(docs, synonyms, items=items)
        return index

    FaqIndex.build = build  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        FaqIndex.build = original  # type: ignore[method-assign]


_FAQ_INDEXES: dict[tuple[object, ...], FaqIndex] = {}


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
        url = request.getfixturevalue("postgres_seeded")
        await restore_seeded(url)
        state = await redis_state(prefix)
        settings = load_settings(database_url=url, redis_url=REDIS_URL, files_dir=tmp_path / "f")
    else:
        state = MemoryStateStore()
        shutil.copyfile(request.getfixturevalue("embedded_template"), tmp_path / "bdb.db")
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "f"
        )
    with _shared_faq_index():
        built = await build_app(settings, state=state)
    yield built
    await built.close()
    if backend == "production":
        await _drop_prefix(prefix)


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app.router)


@pytest.fixture
async def embedded_app(tmp_path: Path, embedded_template: Path) -> AsyncIterator[App]:
    shutil.copyfile(embedded_template, tmp_path / "bdb.db")
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "files"
    )
    with _shared_faq_index():
        built = await build_app(settings)
    yield built
    await built.close()


@pytest.fixture
def cjk_font() -> Path:
    """The CJK font the PDF form needs; its absence fails the run in CI and skips elsewhere."""
    from dialogs.printable import find_cjk_font

    font = find_cjk_font()
    if font is None:
        missing("no CJK font is installed (apt-get install fonts-wqy-microhei)")
    assert font is not None
    return font
