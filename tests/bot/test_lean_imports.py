"""What a process imports decides its memory: renderers and the FAQ index only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RENDERERS = ["docxtpl", "docx", "fpdf", "openpyxl", "xlsxwriter", "PIL", "lxml", "icalendar"]
FAQ_INDEX = ["jieba", "numpy", "rank_bm25"]
FRAMEWORKS = ["aiogram", "telegram"]


def imported_after(code: str, watched: list[str]) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_the_bot_and_worker_modules_load_no_renderer_index_or_telegram_library() -> None:
    code = "import bot.app, bot.outbox, bot.channels.telegram, handlers.routing"
    assert imported_after(code, RENDERERS + FAQ_INDEX + FRAMEWORKS) == []


def test_the_web_chat_loads_no_renderer_nor_index_before_a_question() -> None:
    code = "import bot.channels.web.server, bot.cli"
    assert imported_after(code, RENDERERS + FAQ_INDEX + FRAMEWORKS) == []


def test_each_stack_loads_only_its_own_library() -> None:
    assert imported_after("import bot.channels.telegram_ptb", FRAMEWORKS) == ["telegram"]
    assert imported_after("import bot.channels.telegram_aiogram", FRAMEWORKS) == ["aiogram"]


def test_the_aiogram_stack_leaves_aiogram_models_unbuilt_and_pydantic_as_it_was() -> None:
    """aiogram completes its ~440 models on import (≈ 107 MB); the stack sends and reads
    JSON, so it skips that, and only for aiogram's own models."""
    probe = (
        "import pydantic, bot.channels.telegram_aiogram\n"
        "from aiogram.types import Message\n"
        "class Later(pydantic.BaseModel):\n"
        "    x: 'int'\n"
        "Later.model_rebuild()\n"
        "print(Message.__pydantic_complete__, Later.__pydantic_complete__, Later(x=1).x)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "1"]
