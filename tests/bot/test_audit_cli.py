"""`bangdaiban audit`: the records by case as CSV, and `audit verify` on a changed record."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from test_operator_mistakes import cli

from storage import audit
from storage.db import Database


async def _write(url: str) -> None:
    db = Database(url)
    try:
        async with db.transaction(immediate=True) as session:
            for number in ("BDB-2026-000001", "BDB-2026-000002", "BDB-2026-000001"):
                entry = audit.Entry("case.view", "staff", 1, "window", 1, case_number=number)
                await audit.append(session, entry)
    finally:
        await db.dispose()


def test_audit_lists_by_case_and_verify_finds_a_change(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    asyncio.run(_write(f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}"))

    listed = cli(tmp_path, "audit", "--case", "BDB-2026-000001", "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[0].startswith("时间,人员,角色") and len(lines) == 3
    assert all("BDB-2026-000001" in line and "查看申请" in line for line in lines[1:])

    intact = cli(tmp_path, "audit", "verify")
    assert intact.returncode == 0 and "3 record(s) verified: intact." in intact.stdout

    with sqlite3.connect(tmp_path / "bdb.db") as conn:  # past the application, at the file
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor_id = 7 WHERE id = 2")
    changed = cli(tmp_path, "audit", "verify")
    assert changed.returncode == 1
    assert "record #2" in changed.stderr and "content changed" in changed.stderr

    bad = cli(tmp_path, "audit", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr
