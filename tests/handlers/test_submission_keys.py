"""Draft tokens carry 128 random bits, and a submission key names one applicant's draft."""

from __future__ import annotations

import base64
import re

from sqlalchemy import func, select

from bot.app import App
from storage.models import Case
from support import Chat, fill_application


def token_of(chat: Chat) -> str:
    return chat.button("提交").data.split(":")[1]


async def test_draft_token_has_at_least_128_bits(chat: Chat) -> None:
    await fill_application(chat)
    token = token_of(chat)
    assert len(base64.urlsafe_b64decode(token + "==")) * 8 >= 128
    assert all(len(b.data.encode()) <= 64 for b in chat.buttons)


async def test_two_applicants_with_the_same_token_both_submit(app: App, chat: Chat) -> None:
    other = Chat(app.router, "u2")
    await fill_application(chat)
    await fill_application(other)
    token = token_of(chat)
    async with app.services.state.conversation(other.user.key) as state:
        state["draft"]["token"] = token  # the collision the old 6-hex-digit token made likely
    await chat.press("提交")
    await other.press_data(f"f:{token}:submit")
    first = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    second = re.search(r"BDB-\d{4}-\d{6}", other.text)
    assert first and second and first.group(0) != second.group(0)
    await other.press_data(f"f:{token}:submit")  # pressed twice: still one case each
    assert second.group(0) in other.text
    async with app.services.db.sessions() as session:
        assert await session.scalar(select(func.count(Case.id))) == 2
