"""A restart of the embedded default (SQLite, no Redis) resumes a half-filled 申请表."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bot.app import App, build_app
from bot.config import Settings, load_settings
from storage.models import Case, Question
from support import GOOD_ANSWERS, Chat


def embedded(tmp_path: Path) -> Settings:
    """The settings a newcomer runs with: a SQLite file, no REDIS_URL, no STATE_PATH."""
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        redis_url=None,
        files_dir=tmp_path / "files",
    )


async def restarted(app: App, chat: Chat) -> tuple[App, Chat]:
    """Close the app, build a new one on the same files; the same person's chat, with the
    buttons they were last shown still on their screen."""
    await app.close()
    again = await build_app(app.settings)
    resumed = Chat(again.router, chat.user.chat_id)
    resumed.replies = chat.replies
    return again, resumed


async def count(app: App, model: type[Case] | type[Question]) -> int:
    async with app.services.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_restart_mid_application_resumes_at_the_same_step(tmp_path: Path) -> None:
    app = await build_app(embedded(tmp_path))
    chat = Chat(app.router)
    await chat.say("/apply")
    await chat.press("一般项目")
    await chat.press("是，已在新区立项")
    await chat.press("不是房地产")
    await chat.say(GOOD_ANSWERS["company"])
    assert "第 5/11 步" in chat.text and "统一社会信用代码" in chat.text

    app, chat = await restarted(app, chat)
    await chat.press("跳过")  # a button shown before the restart
    assert "已过期" not in chat.text
    assert "第 6/11 步" in chat.text and "项目名称" in chat.text
    app, chat = await restarted(app, chat)
    await chat.say(GOOD_ANSWERS["project_name"])  # taken as the answer, not as a question
    assert "第 7/11 步" in chat.text and "投资项目统一代码" in chat.text
    assert await count(app, Question) == 0

    await chat.press("跳过")
    await chat.say(GOOD_ANSWERS["contact_name"])
    await chat.say(GOOD_ANSWERS["contact_phone"])
    await chat.say(GOOD_ANSWERS["project_summary"])
    await chat.press("施工许可")
    await chat.press("完成")
    app, chat = await restarted(app, chat)
    await chat.press("提交")
    assert "您的申请已提交" in chat.text
    async with app.services.db.sessions() as session:
        (case,) = (await session.scalars(select(Case))).all()
    assert (case.company, case.project_name) == (
        GOOD_ANSWERS["company"],
        GOOD_ANSWERS["project_name"],
    )
    assert await count(app, Question) == 0
    await app.close()


async def test_the_state_file_lies_beside_the_database_or_at_state_path(tmp_path: Path) -> None:
    assert embedded(tmp_path).state_file == tmp_path / "bdb.state.db"
    chosen = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        redis_url=None,
        state_path=tmp_path / "elsewhere" / "chat.db",
    )
    assert chosen.state_file == tmp_path / "elsewhere" / "chat.db"
    assert load_settings(database_url="sqlite+aiosqlite:///:memory:").state_file is None
    app = await build_app(chosen.model_copy(update={"files_dir": tmp_path / "files"}))
    await Chat(app.router).say("/apply")
    await app.close()
    assert (tmp_path / "elsewhere" / "chat.db").exists()
    assert not (tmp_path / "bdb.state.db").exists()
