"""Migration 0200 maps the old 1–5 回访 scores onto the five 好差评 levels, on both backends."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from conftest import SERVER_URL, _admin, missing
from storage.db import Database


async def _old_ratings(db: Database) -> None:
    """Five closed cases rated 5 … 1 the old way, at revision 0011."""
    await db.upgrade("0011")
    async with db.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO applicants (id, channel, chat_id, unreachable, subscribed, topics, "
                 "created_at) VALUES (1, 't', '1', false, false, '[]', CURRENT_TIMESTAMP)")
        )  # fmt: skip
        for score in range(1, 6):
            await conn.execute(
                text("INSERT INTO cases (id, number, submission_key, applicant_id, status, "
                     "project_kind, company, project_name, contact_name, contact_phone, "
                     "project_summary, created_at, updated_at) VALUES (:id, :n, :n, 1, 'closed', "
                     "'general', 'c', 'p', 'n', '1', 's', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"id": score, "n": f"BDB-2025-00000{score}"},
            )  # fmt: skip
            await conn.execute(
                text("INSERT INTO case_ratings (case_id, score, at) "
                     "VALUES (:id, :id, CURRENT_TIMESTAMP)"),
                {"id": score},
            )  # fmt: skip


async def _levels(db: Database) -> dict[int, tuple[str, object]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT score, level, points FROM case_ratings"))
        return {score: (level, points) for score, level, points in rows}


EXPECTED = {
    5: "very_satisfied",
    4: "satisfied",
    3: "basic",
    2: "dissatisfied",
    1: "very_dissatisfied",
}


async def _check(db: Database) -> None:
    await _old_ratings(db)
    await db.upgrade()
    found = await _levels(db)
    assert {score: level for score, (level, _) in found.items()} == EXPECTED
    assert all(points in ([], "[]") for _, points in found.values())
    await db.downgrade("0011")  # and back up: the downgrade leaves a schema 0200 applies to
    await db.upgrade()


async def test_old_scores_become_levels_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await _check(db)
    finally:
        await db.dispose()


async def test_old_scores_become_levels_on_postgresql() -> None:
    name = f"bdb_migration_{os.getpid()}"
    try:
        await _admin(f'DROP DATABASE IF EXISTS "{name}"')
        await _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        missing(f"PostgreSQL is not reachable: {exc}")
    db = Database(f"{SERVER_URL}/{name}")
    try:
        await _check(db)
    finally:
        await db.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
