"""Engine, sessions and schema migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from storage.signals import SignallingSession
from storage.write_behind import WriteBehind

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseUnavailable(Exception):
    """The database cannot be reached."""


def _sqlite_pragmas(dbapi_connection: object, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _replace_closed(dbapi_connection: object, record: ConnectionPoolEntry, proxy: object) -> None:
    """A pooled connection whose socket the server closed (a restart, an idle timeout) is
    not handed out: the pool opens a fresh one (DisconnectionError at checkout)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("closed by the server")


class Database:
    """One bounded connection pool and a session factory."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.drivername.startswith("sqlite")
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A burst waits up to pool_timeout for a connection instead of failing. No
            # pre-ping (asyncpg's is BEGIN, ";" and ROLLBACK: three round trips per checkout,
            # a message's costliest work); a connection the server closed is replaced at
            # checkout instead (_replace_closed), at no round trip.
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=30
            )
            event.listen(self.engine.sync_engine, "checkout", _replace_closed)
        # Records nobody reads back at once, written in batches (storage/write_behind.py).
        self.behind = WriteBehind(self.transaction)
        self.sessions = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            # PostgreSQL: new web notices wake the web processes at commit (storage/signals.py).
            sync_session_class=Session if self.is_sqlite else SignallingSession,
        )

    @asynccontextmanager
    async def transaction(self, immediate: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose work commits together or not at all.

        `immediate`: one writer at a time on SQLite, which has no row locks — the
        transaction takes the write lock at BEGIN and others wait (busy_timeout) for it.
        PostgreSQL needs nothing here: the domain locks the rows it changes."""
        async with self.sessions() as session, session.begin():
            if immediate and self.is_sqlite:
                await session.execute(text("BEGIN IMMEDIATE"))
            yield session

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations on this database."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_upgrade, revision)

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_downgrade, revision)

    async def dispose(self) -> None:
        await self.behind.close()
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    # Imported here: Alembic costs a quarter of a second at start-up, and only migrations
    # need it (not the CLI's exports nor a bot process that is already migrated).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _run_upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def _run_downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)
