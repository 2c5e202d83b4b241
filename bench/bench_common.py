"""Shared set-up for the benchmarks: a throwaway PostgreSQL database, migrated and seeded."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database
from storage.seed import seed_all

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


async def fresh_database(url: str) -> None:
    """Drop and create the database named in `url`, apply the migrations, load the seed data."""
    server, name = url.rsplit("/", 1)
    admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    db = Database(url)
    await db.upgrade()
    async with db.transaction() as session:
        await seed_all(session)
    await db.dispose()


async def drop_database(url: str) -> None:
    """Drop the database named in `url` (a benchmark's own, made by `fresh_database`)."""
    server, name = url.rsplit("/", 1)
    admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
