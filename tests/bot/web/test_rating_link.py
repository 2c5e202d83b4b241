"""The one-time rating link sent with the delivered notice: its page rates the case once
without the chat identity, is spent by that rating, expires, and refuses a bad form politely;
the case stays rated once whichever channel rates first. Both backends."""

from __future__ import annotations

import re

import aiohttp
import pytest
from sqlalchemy import select, update

from bot.app import App
from storage.models import BadRating, Case, CaseRating, RatingLink, utcnow
from support import Chat, delivered_case, notices_to
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)


async def link_of(served: Served, chat: Chat) -> str:
    await delivered_case(served.app, chat)
    delivered = (await notices_to(served.app, chat))[-1]
    found = re.search(r"(https?://\S+/rate/[A-Za-z0-9_-]+)", delivered.text)
    assert found, delivered.text
    return served.url + "rate/" + found.group(1).rsplit("/", 1)[1]


async def fetch(url: str, form: dict[str, str | list[str]] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client:
        if form is None:
            async with client.get(url) as response:
                return response.status, await response.text()
        data = [(k, v) for k, vs in form.items() for v in ([vs] if isinstance(vs, str) else vs)]
        async with client.post(url, data=data) as response:
            return response.status, await response.text()


async def ratings(app: App) -> list[CaseRating]:
    async with app.services.db.sessions() as session:
        return list((await session.scalars(select(CaseRating))).all())


async def test_the_link_rates_the_case_once_and_a_bad_level_opens_an_item(
    served: Served, chat: Chat
) -> None:
    url = await link_of(served, chat)
    status, page = await fetch(url)
    assert status == 200 and "提交评价" in page and "非常不满意" in page

    form = {"level": "dissatisfied", "point": ["attitude", "overall", "attitude"],
            "comment": "窗口解释不清楚"}  # fmt: skip
    status, page = await fetch(url, form)
    assert status == 200 and "感谢您对申请" in page and "1 个工作日内" in page
    [rating] = await ratings(served.app)
    # "overall" is a good level's point: dropped; the repeated reason counted once.
    assert (rating.level, rating.points, rating.comment, rating.channel) == (
        "dissatisfied",
        ["attitude"],
        "窗口解释不清楚",
        "link",
    )
    async with served.app.services.db.sessions() as session:
        case = await session.get(Case, rating.case_id)
        item = await session.scalar(select(BadRating))
    assert case is not None and case.status == "closed"
    assert item is not None and item.case_id == rating.case_id

    status, page = await fetch(url, {"level": "very_satisfied"})
    assert status == 410 and "仅可使用一次" in page
    status, _ = await fetch(url)
    assert status == 410
    assert len(await ratings(served.app)) == 1


async def test_a_case_rated_in_the_chat_is_not_rated_again_by_link(
    served: Served, chat: Chat
) -> None:
    url = await link_of(served, chat)
    delivered = (await notices_to(served.app, chat))[-1]
    await chat.press_data(delivered.buttons[0][0]["data"])  # 非常满意 in the chat
    status, page = await fetch(url, {"level": "very_dissatisfied"})
    assert status == 409 and "一事一评" in page
    [rating] = await ratings(served.app)
    assert rating.level == "very_satisfied" and rating.channel != "link"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"comment": "没选等级"}, "请您选择一个评价等级"),
        ({"level": "5"}, "请您选择一个评价等级"),  # an old 1–5 score is the chat's, not the form's
        ({"level": "<script>"}, "请您选择一个评价等级"),
        ({"level": "satisfied", "comment": "长" * 1001}, "不超过 1000 字"),
        ({"level": "satisfied", "comment": "长" * 4000}, "提交的内容过多"),
    ],
)
async def test_a_bad_form_is_a_polite_refusal_and_the_link_still_works(
    served: Served, chat: Chat, form: dict[str, str], message: str
) -> None:
    url = await link_of(served, chat)
    status, page = await fetch(url, form)
    assert status in (400, 413) and message in page and "<script>" not in page
    if status == 400:  # what was typed is kept (a body over the limit is not read)
        assert form.get("comment", "")[:10] in page
    assert await ratings(served.app) == []
    status, _ = await fetch(url, {"level": "satisfied"})
    assert status == 200 and len(await ratings(served.app)) == 1


async def test_an_expired_or_unknown_link_is_refused(served: Served, chat: Chat) -> None:
    url = await link_of(served, chat)
    async with served.app.services.db.transaction() as session:
        await session.execute(update(RatingLink).values(expires_at=utcnow()))
    status, page = await fetch(url, {"level": "satisfied"})
    assert status == 410 and "已过期" in page
    status, page = await fetch(served.url + "rate/" + "x" * 24)
    assert status == 404 and "链接无效" in page
    status, _ = await fetch(served.url + "rate/" + "x" * 5000)
    assert status == 404
    assert await ratings(served.app) == []
