"""Structured logs: ids per update, and no phone number, ID number or message text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from bot import logs
from bot.app import App
from support import GOOD_ANSWERS, Chat, fill_application

PHONE, ID_NUMBER = "13912345678", "430102199003071234"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    logs.configure("DEBUG", "json", out)
    yield out
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_personal_data_never_reaches_the_log(stream: io.StringIO) -> None:
    log = logging.getLogger("bdb.test")
    log.info("question from %s id %s: %s", PHONE, ID_NUMBER, "我想咨询施工许可怎么办理")
    log.warning("landline 0731-88886666 and +86 13800138000 case=BDB-2026-000123")
    structlog.get_logger("bdb.test").info(
        "submitted", text="您好，我的电话是13800138000", contact_name="张伟", case_id=7
    )
    try:
        raise ValueError(f"duplicate key (contact_phone)=({PHONE})")
    except ValueError:
        log.exception("insert failed")
    written = stream.getvalue()
    for secret in (PHONE, ID_NUMBER, "13800138000", "88886666", "施工许可", "张伟", "您好"):
        assert secret not in written
    records = lines(stream)
    assert len(records) == 4
    assert "BDB-2026-000123" in str(records[1]["event"])  # case numbers are ids, kept
    assert records[2]["case_id"] == 7 and "text" not in records[2]
    assert "ValueError" in str(records[3]["exception"])


async def test_every_line_of_an_update_carries_its_ids(
    stream: io.StringIO, embedded_app: App
) -> None:
    chat = Chat(embedded_app.router, chat_id="9001")
    await fill_application(chat)
    await chat.press("提交")
    handled = [r for r in lines(stream) if str(r["event"]).startswith("update handled")]
    assert handled and all(r["chat"] == "9001" and r["channel"] == "test" for r in handled)
    assert len({r["update"] for r in handled}) == len(handled)  # one id per update
    written = stream.getvalue()
    assert GOOD_ANSWERS["contact_phone"] not in written
    assert GOOD_ANSWERS["company"] not in written
