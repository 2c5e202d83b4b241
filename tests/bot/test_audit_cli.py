"""`bangdaiban audit`: the records by case as CSV, and `audit verify` on a changed record."""

from __future__ import annotations

import asyncio
import getpass
import socket
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


def test_a_command_line_export_is_recorded_with_the_operator_account(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    out = tmp_path / "cases.csv"
    exported = cli(tmp_path, "export", "cases", "--out", str(out), "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    assert out.is_file()
    with sqlite3.connect(tmp_path / "bdb.db") as conn:
        rows = conn.execute("SELECT action, actor_kind, channel, client, fields FROM audit_log")
        ((action, kind, channel, client, fields),) = rows.fetchall()
    assert (action, kind, channel) == ("export.cases", "operator", "cli")
    assert client == f"{getpass.getuser()}@{socket.gethostname()}"[:64]
    assert "contact_phone" in fields
    listed = cli(tmp_path, "audit", "--format", "csv")
    assert "导出申请台账" in listed.stdout and "cli" in listed.stdout


def test_an_export_that_cannot_be_recorded_leaves_no_file(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    with sqlite3.connect(tmp_path / "bdb.db") as conn:  # the log refuses every new row
        conn.execute(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit down'); END"
        )
    out = tmp_path / "ledger.xlsx"
    exported = cli(tmp_path, "export", "ledger", "--out", str(out))
    assert exported.returncode != 0 and not out.exists()
