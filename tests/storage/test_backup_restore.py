"""The README's backup and restore: pg_dump of the live database, pg_restore into a fresh one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.app import App
from conftest import SERVER_URL, _admin, require_tool
from storage import applicants, cases
from storage.cases import ApplicationData
from storage.db import Database

DATA = ApplicationData(
    project_kind="general",
    company="湖南某某科技有限公司",
    credit_code=None,
    project_name="某某项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于测试的项目简介。",
    item_codes=("construction_permit",),
    other_items=None,
)

pytestmark = pytest.mark.parametrize("backend", ["production"])


async def run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")


async def test_a_dump_restores_into_a_fresh_database(app: App, tmp_path: Path) -> None:
    pg_dump = require_tool("pg_dump", "postgresql-client")
    pg_restore = require_tool("pg_restore", "postgresql-client")
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "backup")
        number = (await cases.create(session, applicant.id, DATA, "k-backup")).number
    url = make_url(app.settings.database_url)
    server = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or ""]
    dump = tmp_path / "bangdaiban.dump"
    await run(pg_dump, *server, "--format=custom", f"--file={dump}", str(url.database))
    fresh = f"{url.database}_restored"
    await _admin(f'DROP DATABASE IF EXISTS "{fresh}"')
    await _admin(f'CREATE DATABASE "{fresh}"')
    try:
        await run(pg_restore, *server, "--no-owner", f"--dbname={fresh}", str(dump))
        restored = Database(f"{SERVER_URL}/{fresh}")
        try:
            async with restored.sessions() as session:
                case = await cases.by_number(session, number)
                assert case is not None
                assert (case.company, case.contact_phone) == (DATA.company, DATA.contact_phone)
                assert [item.name for item in case.items] == ["建筑工程施工许可证"]
        finally:
            await restored.dispose()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
