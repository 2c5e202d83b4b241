"""An operator's mistakes stop the program with one line that names what to fix."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import quiet_libraries
from bot.config import SettingsError, load_settings
from storage.seed import DATA


def cli(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """The real command line in tmp_path, on an embedded database unless env says otherwise."""
    environment = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "LOG_LEVEL"}},
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        "FILES_DIR": str(tmp_path / "files"),
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )


def one_line_refusal(result: subprocess.CompletedProcess[str], starts: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert starts in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook_port", 99999),
        ("webhook_port", -1),
        ("flood_limit", 0),
        ("flood_window_seconds", 0),
        ("state_ttl_seconds", 0),
        ("db_pool_size", 0),
        ("redis_max_connections", 0),
        ("send_rate_per_second", -5),
    ],
)
def test_every_numeric_setting_has_a_range(name: str, value: int) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**{name: value})
    assert str(refused.value).startswith(name.upper() + ":")
    assert "\n" not in str(refused.value)


def test_defaults_are_within_their_ranges() -> None:
    settings = load_settings(webhook_port=0, send_rate_per_second=0)
    assert settings.webhook_port == 0 and settings.flood_limit == 20


def test_webhook_port_out_of_range_stops_run_with_one_line(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        "run",
        TELEGRAM_BOT_TOKEN="123:abc",
        WEBHOOK_URL="https://bot.example.com/hook",
        WEBHOOK_SECRET="s",
        WEBHOOK_PORT="99999",
    )
    line = one_line_refusal(result, "WEBHOOK_PORT")
    assert "65535" in line


def test_redis_down_refuses_to_start(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        "run",
        TELEGRAM_BOT_TOKEN="123:abc",
        TELEGRAM_API_URL="http://127.0.0.1:9",
        REDIS_URL="redis://127.0.0.1:9/0",
    )
    one_line_refusal(result, "REDIS_URL: cannot connect to Redis")
    console = cli(tmp_path, "console", stdin="/start\n", REDIS_URL="redis://127.0.0.1:9/0")
    one_line_refusal(console, "REDIS_URL: cannot connect to Redis")


def test_files_dir_that_cannot_be_written_refuses_to_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    result = cli(tmp_path, "console", stdin="/start\n", FILES_DIR=str(blocker / "files"))
    one_line_refusal(result, "FILES_DIR: cannot write to")


@pytest.mark.parametrize("hours", ["-5", "0", "999999999999"])
def test_invite_hours_are_checked(tmp_path: Path, hours: str) -> None:
    result = cli(tmp_path, "staff", "invite", "李娜", "--hours", hours)
    one_line_refusal(result, "--hours: use 1 to 720")


def test_invite_code_has_at_least_128_bits(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    result = cli(tmp_path, "staff", "invite", "李娜", "--hours", "1")
    assert result.returncode == 0, result.stderr
    code = re.search(r"/bind (\S+)", result.stdout)
    assert code is not None
    assert re.fullmatch(r"[A-Z2-7]{26}", code.group(1))  # 26 base32 characters = 130 bits


def test_library_loggers_stay_quiet_at_debug_unless_named(tmp_path: Path) -> None:
    quiet = cli(tmp_path, "seed", LOG_LEVEL="DEBUG")
    assert quiet.returncode == 0, quiet.stderr
    assert "88880102" not in quiet.stderr  # a roster phone number written by the seed
    assert "INSERT" not in quiet.stderr and "UPDATE" not in quiet.stderr
    asked = cli(tmp_path, "seed", LOG_LEVEL="DEBUG", LOG_LIBRARIES="aiosqlite")
    assert asked.returncode == 0
    assert "aiosqlite" in asked.stderr


def test_quiet_libraries_keeps_the_named_ones_at_the_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("sqlalchemy", "sqlalchemy.engine", "aiosqlite", "redis"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    quiet_libraries("sqlalchemy.engine", "DEBUG")
    assert logging.getLogger("aiosqlite").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("sqlalchemy.pool").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() == logging.DEBUG


def test_seed_reports_who_it_deactivated(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    data = tmp_path / "real"
    data.mkdir()
    for name in ("items.yaml", "faq.yaml"):
        (data / name).write_bytes((DATA / name).read_bytes())
    roster = (DATA / "roster.yaml").read_text(encoding="utf-8")
    (data / "roster.yaml").write_text(
        "\n".join(line for line in roster.splitlines() if "王磊" not in line), encoding="utf-8"
    )
    result = cli(tmp_path, "seed", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "Deactivated 1 staff no longer in roster.yaml: 王磊" in result.stderr


def test_staff_devices_lists_and_revokes_a_browser(tmp_path: Path) -> None:
    import asyncio
    import datetime as dt

    from sqlalchemy import select

    from storage import staff_devices
    from storage.db import Database
    from storage.models import Staff

    assert cli(tmp_path, "seed").returncode == 0

    async def bind_browser() -> int:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}")
        try:
            async with db.transaction() as session:
                staff = await session.scalar(select(Staff).where(Staff.name == "李娜"))
                assert staff is not None
                device = await staff_devices.bind(session, staff, dt.timedelta(days=30), "Edge")
                return device.id
        finally:
            await db.dispose()

    device = asyncio.run(bind_browser())
    listed = cli(tmp_path, "staff", "devices", "李娜")
    assert listed.returncode == 0, listed.stderr
    assert f"#{device}" in listed.stdout and "Edge" in listed.stdout
    revoked = cli(tmp_path, "staff", "devices", "李娜", "--revoke", str(device))
    assert revoked.returncode == 0, revoked.stderr
    assert "signed out" in revoked.stdout
    again = cli(tmp_path, "staff", "devices", "李娜", "--revoke", str(device))
    assert again.returncode == 1 and f"No live browser #{device}" in again.stderr
    assert "0 browser(s)" in cli(tmp_path, "staff", "devices", "李娜").stderr


def test_staff_devices_of_someone_not_in_the_roster(tmp_path: Path) -> None:
    assert cli(tmp_path, "seed").returncode == 0
    one_line_refusal(cli(tmp_path, "staff", "devices", "无此人"), "No staff member named")
