"""The shared set-up the suite relies on gives each test what a fresh, seeded database holds."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text

from bot.app import App, build_app
from bot.config import load_settings
from conftest import postgres_database, restore_seeded
from storage import applicants
from storage.db import Database
from storage.models import Base
from storage.seed import seed_all
from storage.state import MemoryStateStore

# When a row was seeded: the snapshot's rows are minutes older than a fresh seed's.
SEEDED_AT = {"created_at", "updated_at"}


async def contents(db: Database) -> dict[str, object]:
    """Every table's rows (by key, without their seeding time) and, on PostgreSQL, each
    sequence's next value."""
    found: dict[str, object] = {}
    async with db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in SEEDED_AT]
            query = select(*columns).order_by(*table.primary_key.columns)
            found[table.name] = [tuple(row) for row in (await session.execute(query)).all()]
        if not db.is_sqlite:
            names = await session.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            )
            for name in names.all():
                found[f"seq {name}"] = await session.scalar(text(f"SELECT nextval('{name}')"))
    return found


async def test_restored_postgres_equals_a_freshly_seeded_one(postgres_seeded: str) -> None:
    db = await postgres_database(postgres_seeded)  # the old way: empty, then seed
    async with db.transaction() as session:
        await seed_all(session)
    fresh = await contents(db)
    async with db.transaction() as session:  # a test's leftovers
        await applicants.get_or_create(session, "test", "leftover")
    await restore_seeded(postgres_seeded)
    restored = await contents(db)
    await db.dispose()
    assert sum(len(rows) for rows in fresh.values() if isinstance(rows, list)) > 50
    assert restored == fresh


async def test_the_embedded_copy_equals_what_build_app_seeds(
    embedded_app: App, tmp_path: Path
) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'own.db'}", files_dir=tmp_path / "own"
    )
    own = await build_app(settings, state=MemoryStateStore())  # migrates and seeds itself
    try:
        theirs, mine = await contents(embedded_app.services.db), await contents(own.services.db)
    finally:
        await own.close()
    assert sum(len(rows) for rows in mine.values() if isinstance(rows, list)) > 50
    assert theirs == mine


async def test_each_embedded_test_gets_its_own_copy(
    embedded_app: App, embedded_template: Path
) -> None:
    async with embedded_app.services.db.transaction() as session:
        await applicants.get_or_create(session, "test", "mine")
    template = Database(f"sqlite+aiosqlite:///{embedded_template}")
    try:
        async with template.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Base.metadata.tables["applicants"])
            )
    finally:
        await template.dispose()
    assert count == 0
