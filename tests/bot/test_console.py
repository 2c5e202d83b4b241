"""The console channel, driven as a user would: `bangdaiban console` with piped stdin."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from docx import Document as Docx

from bot.app import build_app
from bot.config import load_settings
from conftest import REDIS_URL, _drop_prefix
from storage import roster
from support import GOOD_ANSWERS

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def console(tmp_path: Path, lines: list[str], *args: str, **env: str) -> str:
    """Run the real CLI in tmp_path with one line per message; return what it printed."""
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        "FILES_DIR": str(tmp_path / "files"),
        "COLUMNS": "200",
        **env,
    }
    if "REDIS_URL" not in env:
        environment.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_scripted_application_through_the_console(tmp_path: Path) -> None:
    out = console(
        tmp_path,
        [
            "/start",
            "申请帮代办",
            "一般项目（非房地产）",
            "1",  # 是，已在新区立项或投资备案
            "不是房地产开发项目",
            GOOD_ANSWERS["company"],
            "跳过",
            GOOD_ANSWERS["project_name"],
            "跳过",
            GOOD_ANSWERS["contact_name"],
            "12345",
            GOOD_ANSWERS["contact_phone"],
            GOOD_ANSWERS["project_summary"],
            "8",  # ☐ 建筑工程施工许可证
            "完成",
            "修改·联系人",
            "李雷",
            "提交",
            "/cases",
        ],
    )
    assert "[1] 我要咨询" in out
    assert "联系电话格式不正确" in out
    assert "联系人：李雷" in out
    assert "您的申请已提交" in out
    assert "BDB-" in out and "已提交" in out
    forms = list((tmp_path / "var" / "downloads").glob("*.docx"))
    assert len(forms) == 1
    text = "\n".join(p.text for p in Docx(str(forms[0])).paragraphs)
    assert GOOD_ANSWERS["company"] in text


def test_unsupported_and_unknown_input_keeps_the_dialog(tmp_path: Path) -> None:
    out = console(tmp_path, ["/apply", "/nonsense", "", "重点产业项目", "x" * 10_000])
    assert "暂不支持该指令" in out
    assert "没有收到内容" in out
    assert "最多 100 个字，您输入了 10000 个字" in out
    assert out.count("第 2/") >= 2


async def test_dialog_survives_a_restart_with_redis(tmp_path: Path) -> None:
    user = f"restart-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": REDIS_URL}
    first = console(
        tmp_path, ["/apply", "重点产业项目", GOOD_ANSWERS["company"]], "--user", user, **env
    )
    assert "第 3/" in first
    second = console(tmp_path, ["/apply", "继续填写"], "--user", user, **env)
    assert "您有一份尚未提交的申请" in second
    assert "第 3/" in second and "统一社会信用代码" in second
    await _drop_prefix(f"bdb:state:console:{user}")


def test_dialog_survives_a_restart_on_the_embedded_default(tmp_path: Path) -> None:
    first = console(
        tmp_path,
        ["/apply", "一般项目（非房地产）", "1", "不是房地产开发项目", GOOD_ANSWERS["company"]],
    )
    assert "第 5/" in first and "统一社会信用代码" in first
    # A new process: the options it printed are gone, the conversation is not.
    second = console(tmp_path, ["跳过", GOOD_ANSWERS["project_name"]])
    assert "已过期" not in second
    assert "第 6/" in second and "第 7/" in second and "投资项目统一代码" in second
    with sqlite3.connect(tmp_path / "bdb.db") as db:
        assert db.execute("SELECT count(*) FROM questions").fetchone() == (0,)
    assert (tmp_path / "bdb.state.db").exists()


def test_staff_console_needs_a_known_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--as", "staff:无此人"],
        input="",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}"},
        timeout=120,
    )
    assert result.returncode == 2
    assert "No staff member" in result.stderr


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": "mysql://nope"},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Configuration error — DATABASE_URL")
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/x"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "DATABASE_URL: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_state_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
            "STATE_PATH": str(tmp_path / "a-file" / "state.db"),
        },
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("STATE_PATH: cannot keep conversations in")
    assert "Traceback" not in result.stderr


async def test_staff_console_leaves_the_real_binding_alone(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}", files_dir=tmp_path / "files"
    )
    app = await build_app(settings)  # migrated and seeded, as the console would
    async with app.services.db.transaction() as session:
        staff = await roster.staff_by_name(session, "李娜")
        assert staff is not None
        await roster.bind_chat(session, staff, "telegram", "777")
    await app.close()
    out = console(tmp_path, ["/start", "/inbox"], "--as", "staff:李娜")
    assert "您好，李娜" in out and "目前没有待办的申请" in out
    app = await build_app(settings)
    async with app.services.db.sessions() as session:
        staff = await roster.staff_by_name(session, "李娜")
    await app.close()
    assert staff is not None and (staff.channel, staff.chat_id) == ("telegram", "777")
