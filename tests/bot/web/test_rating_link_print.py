"""The printed form of a delivered case carries a QR code of a fresh one-time 好差评 link
beside the status QR code; scanned (zbarimg) it opens the rating page and rates the case.
A case not yet delivered prints none, and a case holding RATING_LINKS_PER_CASE usable links
gets no more. Both backends."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

from sqlalchemy import func, select
from test_rating_link import fetch, ratings

from bot.app import App
from services import documents
from storage import cases, rating_links
from storage.models import RatingLink, utcnow
from support import Chat, delivered_case, fill_application, scan
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)


async def printed_codes(app: App, number: str, tmp_path: Path) -> list[str]:
    """Every QR code on the case's printed DOCX form, as a phone reads them."""
    async with app.services.db.sessions() as session:
        case = await cases.by_number(session, number)
    assert case is not None
    document = await documents.application_form(app.services, case, "docx")
    assert document is not None
    found = []
    with zipfile.ZipFile(io.BytesIO(document.content)) as archive:
        for name in archive.namelist():
            if name.startswith("word/media/"):
                image = tmp_path / Path(name).name
                image.write_bytes(archive.read(name))
                found += scan(image)
    return found


async def test_the_printed_result_carries_a_rating_link_that_rates_once(
    served: Served, chat: Chat, tmp_path: Path
) -> None:
    number = await delivered_case(served.app, chat)
    codes = await printed_codes(served.app, number, tmp_path)
    [status] = [code for code in codes if "?case=" in code]
    [link] = [code for code in codes if "/rate/" in code]
    assert status.endswith(f"?case={number}") and len(codes) == 2
    url = served.url + "rate/" + link.rsplit("/", 1)[1]
    status_code, page = await fetch(url)
    assert status_code == 200 and "提交评价" in page and number in page
    status_code, page = await fetch(url, {"level": "satisfied"})
    assert status_code == 200 and "感谢您对申请" in page
    [rating] = await ratings(served.app)
    assert (rating.level, rating.channel) == ("satisfied", "link")
    # Rated, the case is closed: printed again, the form has no rating code any more.
    assert [code for code in await printed_codes(served.app, number, tmp_path)] == [status]


async def test_a_case_not_delivered_prints_no_rating_link(
    served: Served, chat: Chat, tmp_path: Path
) -> None:
    await fill_application(chat, items=("施工许可",))
    await chat.press("提交")
    found = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    assert found
    codes = await printed_codes(served.app, found.group(0), tmp_path)
    assert len(codes) == 1 and "/rate/" not in codes[0]


async def test_printing_again_and_again_stops_at_the_cap_of_links(
    served: Served, chat: Chat, tmp_path: Path
) -> None:
    number = await delivered_case(served.app, chat)
    cap = served.app.services.rating_links.per_case
    async with served.app.services.db.transaction() as session:
        case = await cases.by_number(session, number)
        assert case is not None
        held = await rating_links.live_count(session, case.id, utcnow())  # the notice's link
        ttl = dt.timedelta(days=served.app.services.rating_links.days)
        for _ in range(cap - held - 1):
            rating_links.issue(session, case.id, utcnow(), ttl)
    assert any("/rate/" in code for code in await printed_codes(served.app, number, tmp_path))
    codes = await printed_codes(served.app, number, tmp_path)
    assert len(codes) == 1 and "/rate/" not in codes[0]
    async with served.app.services.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RatingLink)) == cap
