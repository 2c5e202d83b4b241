"""Staff sessions and /desk over HTTP without a browser: each role's work list, exports by
role, forged, expired and revoked sessions, CSRF, renewal, unbinding."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import aiohttp
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from bot.app import App
from bot.channels.web import staff_session
from bot.channels.web.desk import open_target
from dialogs.texts import render_string
from domain.policy import china_today
from storage import applicants, cases, key_projects, outbox, questions
from storage.cases import ApplicationData
from storage.key_projects import Stage
from storage.models import (
    Case,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    ProjectKind,
    Question,
    QuestionStatus,
    Staff,
    StaffDevice,
    staff_web_chat,
    utcnow,
)
from storage.outbox import Recipient
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)

LOGIN = "工作人员登录"


def new_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def csrf_of(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(url) as response:
        page = await response.text()
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert match, page
    return match.group(1)


async def staff_id(app: App, name: str) -> int:
    async with app.services.db.sessions() as session:
        found = await session.scalar(select(Staff.id).where(Staff.name == name))
        assert found is not None
        return found


async def sign_in(served: Served, client: aiohttp.ClientSession, name: str) -> None:
    """Bind this client as `name` the way the page does: POST staff/bind with the code."""
    async with served.app.services.db.transaction() as session:
        code = await questions.create_invite(
            session, await staff_id(served.app, name), dt.timedelta(hours=1)
        )
    token = await csrf_of(client, served.url)
    async with client.post(
        f"{served.url}staff/bind", json={"code": code}, headers={"X-CSRF-Token": token}
    ) as response:
        assert response.status == 200
        assert (await response.json()) == {"ok": True}


async def desk_page(client: aiohttp.ClientSession, served: Served, query: str = "") -> str:
    async with client.get(f"{served.url}desk{query}") as response:
        text = await response.text()
        assert response.status == (401 if LOGIN in text else 200)
        return text


ROW = re.compile(r'data-kind="(\w+)">\s*<td>[^<]*</td>\s*<td>([^<]*)</td>')


def shown(page: str) -> set[str]:
    """The rows of a /desk page as kind:ref."""
    return {f"{kind}:{ref}" for kind, ref in ROW.findall(page)}


async def make_case(
    app: App, chat: str, item: str, kind: str = ProjectKind.GENERAL, status: str | None = None
) -> Case:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat)
        data = ApplicationData(
            project_kind=kind,
            company=f"{chat}科技有限公司",
            credit_code=None,
            project_name=f"{chat}项目",
            project_code=None,
            contact_name="张伟",
            contact_phone="+8613800138000",
            project_summary="项目位于湘江新区，建设厂房。",
            item_codes=(item,),
            other_items=None,
        )
        case = await cases.create(session, applicant.id, data, chat)
        if status:
            case.status = status
        return case


async def world(app: App) -> dict[str, str]:
    """Cases, questions and key-project problems; returns their desk names by label."""
    a = await make_case(app, "alpha", "construction_permit")  # 住建环保局
    b = await make_case(app, "beta", "fiscal_review")  # 财政局
    c = await make_case(app, "gamma", "project_filing", ProjectKind.KEY)  # 经济发展局, key
    await make_case(app, "delta", "construction_permit", status=CaseStatus.CLOSED)
    ids = {n: await staff_id(app, n) for n in ("李娜", "王磊", "许芳", "吴婷")}
    now = utcnow()
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "asker")
        q1 = Question(applicant_id=applicant.id, text="路灯坏了", owner_id=ids["李娜"])
        q2 = Question(
            applicant_id=applicant.id,
            text="环评怎么办",
            owner_id=ids["王磊"],
            assignee_id=ids["许芳"],
            status=QuestionStatus.FORWARDED,
        )
        q3 = Question(
            applicant_id=applicant.id,
            text="已答复",
            owner_id=ids["李娜"],
            status=QuestionStatus.CLOSED,
        )
        session.add_all([q1, q2, q3])
        case_c = await session.scalar(select(Case).where(Case.number == c.number))
        project = await key_projects.create(
            session,
            "gamma项目",
            "gamma科技有限公司",
            Stage.APPLIED,
            None,
            case_c.id if case_c else None,
            extra_members=[ids["吴婷"]],
        )
        p1 = await key_projects.raise_problem(session, project, "用地指标", ids["吴婷"], now)
        p2 = await key_projects.raise_problem(session, project, "环评排队", ids["吴婷"], now)
        p3 = await key_projects.raise_problem(session, project, "资金缺口", ids["吴婷"], now)
        p2.level, p3.level = 2, 4
        await session.flush()
        return {
            "A": f"case:{a.number}",
            "B": f"case:{b.number}",
            "C": f"case:{c.number}",
            "q1": f"question:#{q1.id}",
            "q2": f"question:#{q2.id}",
            "p1": f"problem:#{p1.id}",
            "p2": f"problem:#{p2.id}",
            "p4": f"problem:#{p3.id}",
        }


# What the visibility policy gives each role (domain/policy.py, domain/desk.py):
EXPECTED = {
    "陈晨": {"A", "B", "C", "q1", "q2", "p1", "p2", "p4"},  # admin: everything open
    "李娜": {"A", "B", "C", "q1"},  # window: every case, the questions she owns
    "王磊": {"A", "B", "C", "q2"},  # window: owns q2 though it was forwarded
    "周静": {"A", "B", "C", "p1", "p2"},  # lead-unit chief: on the team, chief of its unit
    "钱峰": {"A", "B", "C", "p2"},  # chief of a team member's unit: level 2
    "许芳": {"A", "q2"},  # specialist: her unit's items, the question forwarded to her
    "吴婷": {"C", "p1"},  # specialist on the key project's team
    "刘洋": {"C", "p4"},  # leader: key-project cases, problems at the top level
}


async def test_each_roles_desk_shows_exactly_what_the_policy_allows(served: Served) -> None:
    names = await world(served.app)
    for person, wanted in EXPECTED.items():
        async with new_client() as client:
            await sign_in(served, client, person)
            async with client.get(f"{served.url}desk") as response:
                page = await response.text()
                assert response.status == 200
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert "待办事项" in page
            assert shown(page) == {names[w] for w in wanted}, person


async def test_desk_filters_search_and_overdue_first(served: Served) -> None:
    names = await world(served.app)
    async with served.app.services.db.transaction() as session:
        late = names["B"].removeprefix("case:")
        await session.execute(
            update(Case).where(Case.number == late).values(due_at=utcnow() - dt.timedelta(hours=1))
        )
    async with new_client() as client:
        await sign_in(served, client, "陈晨")
        page = await desk_page(client, served)
        first = ROW.search(page)
        assert first is not None and f"{first.group(1)}:{first.group(2)}" == names["B"]
        assert "已超时" in page
        assert shown(await desk_page(client, served, "?kind=case")) == {
            names["A"],
            names["B"],
            names["C"],
        }
        assert shown(await desk_page(client, served, "?kind=problem&status=level_2")) == {
            names["p2"]
        }
        assert shown(await desk_page(client, served, "?q=gamma")) == {
            names["C"],
            names["p1"],
            names["p2"],
            names["p4"],
        }
        number = names["A"].removeprefix("case:")
        assert shown(await desk_page(client, served, f"?q={number}")) == {names["A"]}


CHINA = dt.timezone(dt.timedelta(hours=8))
WHEN = '{% from "web/when.j2" import when %}{{ when(at, today) }}'


def due_cell(page: str, number: str) -> str:
    """The 办理时限 cell of a case's row on /desk, as its text."""
    row = page.split(f"<td>{number}</td>", 1)[1].split("</tr>", 1)[0]
    return re.sub(r"<[^>]+>", "", re.findall(r"<td>(.*?)</td>", row, re.S)[3]).strip()


def test_moments_read_today_this_year_or_the_full_date() -> None:
    today = dt.date(2026, 12, 5)

    def shown_as(at: dt.datetime) -> str:
        return re.sub(r"<[^>]+>", "", render_string(WHEN, at=at, today=today))

    assert shown_as(dt.datetime(2026, 12, 5, 2, 32, tzinfo=dt.UTC)) == "今天 10:32"
    assert shown_as(dt.datetime(2026, 12, 4, 16, 30, tzinfo=dt.UTC)) == "今天 00:30"
    assert shown_as(dt.datetime(2026, 12, 4, 15, 59, tzinfo=dt.UTC)) == "12月4日"
    assert shown_as(dt.datetime(2026, 1, 9, 9, 0, tzinfo=CHINA)) == "1月9日"
    assert shown_as(dt.datetime(2025, 12, 5, 9, 0, tzinfo=CHINA)) == "2025年12月5日"
    assert 'datetime="2026-01-09T09:00+08:00"' in render_string(
        WHEN, at=dt.datetime(2026, 1, 9, 1, 0, tzinfo=dt.UTC), today=today
    )


async def test_desk_deadlines_read_today_or_the_date(served: Served) -> None:
    names = await world(served.app)
    today = china_today()
    other_day = dt.date(today.year, 1, 2 if today == dt.date(today.year, 1, 1) else 1)
    due = {
        "A": dt.datetime.combine(today, dt.time(10, 32), CHINA),
        "B": dt.datetime.combine(other_day, dt.time(17, 30), CHINA),
        "C": dt.datetime(today.year - 1, 12, 5, 17, 30, tzinfo=CHINA),
    }
    async with served.app.services.db.transaction() as session:
        for key, at in due.items():
            number = names[key].removeprefix("case:")
            await session.execute(update(Case).where(Case.number == number).values(due_at=at))
    async with new_client() as client:
        await sign_in(served, client, "陈晨")
        page = await desk_page(client, served, "?kind=case")
    read = {key: due_cell(page, names[key].removeprefix("case:")) for key in due}
    assert read["A"].startswith("今天 10:32")
    assert read["B"].startswith(f"1月{other_day.day}日")
    assert read["C"].startswith(f"{today.year - 1}年12月5日")
    assert "已超时" in read["C"]


async def test_exports_only_for_the_roles_allowed(served: Served) -> None:
    async with new_client() as admin:
        await sign_in(served, admin, "陈晨")
        page = await desk_page(admin, served)
        assert "desk/export/ledger.xlsx" in page and "desk/export/cases.xlsx" in page
        for what in ("ledger", "cases"):
            async with admin.get(f"{served.url}desk/export/{what}.xlsx") as response:
                assert response.status == 200
                assert response.content_type.endswith("spreadsheetml.sheet")
                assert (await response.read())[:2] == b"PK"
    async with new_client() as specialist:
        await sign_in(served, specialist, "许芳")
        page = await desk_page(specialist, served)
        assert "desk/export" not in page
        for what in ("ledger", "cases"):
            async with specialist.get(f"{served.url}desk/export/{what}.xlsx") as response:
                assert response.status == 403
                assert (await response.read())[:2] != b"PK"
    async with new_client() as nobody, nobody.get(f"{served.url}desk/export/cases.xlsx") as r:
        assert r.status == 401 and LOGIN in await r.text()


async def test_forged_expired_and_revoked_sessions_get_the_login_page(served: Served) -> None:
    await world(served.app)
    forged = URLSafeTimedSerializer("another-secret", salt="web-staff").dumps({"d": 1, "n": "x"})
    for value in ("garbage", forged):
        async with new_client() as client:
            client.cookie_jar.update_cookies({staff_session.STAFF_COOKIE: value})
            page = await desk_page(client, served)
            assert LOGIN in page and "BDB-" not in page
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        assert "BDB-" in await desk_page(client, served)
        async with served.app.services.db.transaction() as session:
            await session.execute(
                update(StaffDevice).values(expires_at=utcnow() - dt.timedelta(seconds=1))
            )
        page = await desk_page(client, served)
        assert LOGIN in page and "BDB-" not in page
        # The chat page falls back to the browser's own visitor chat: no staff bar.
        async with client.get(served.url) as response:
            assert 'data-staff="true"' not in await response.text()


@asynccontextmanager
async def _revoked_socket(
    served: Served, client: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """李娜 signed in with an open chat socket, then every browser revoked."""
    await sign_in(served, client, "李娜")
    origin = served.url.rsplit("/", 1)[0].rstrip("/")
    ws_url = served.url.replace("http://", "ws://") + "ws"
    async with client.ws_connect(ws_url, headers={"Origin": origin}) as ws:
        assert (await ws.receive_json())["type"] == "history"
        async with served.app.services.db.transaction() as session:
            await session.execute(update(StaffDevice).values(revoked_at=utcnow()))
        yield ws


async def test_open_socket_of_a_revoked_browser_is_signed_out(served: Served) -> None:
    async with new_client() as client, _revoked_socket(served, client) as ws:
        await ws.send_json({"type": "text", "text": "/inbox"})
        assert (await ws.receive_json()) == {"type": "signed_out"}


async def test_idle_socket_of_a_revoked_browser_is_closed(served: Served) -> None:
    """Revoked elsewhere (here: straight in the database): the notice delivery's next tick
    closes the socket, whether or not a notice is waiting."""
    async with new_client() as client, _revoked_socket(served, client) as ws:
        assert (await ws.receive_json()) == {"type": "signed_out"}
        assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_bind_needs_the_pages_csrf_token(served: Served) -> None:
    li = await staff_id(served.app, "李娜")
    async with served.app.services.db.transaction() as session:
        code = await questions.create_invite(session, li, dt.timedelta(hours=1))
    async with new_client() as client:
        await csrf_of(client, served.url)
        async with client.post(f"{served.url}staff/bind", json={"code": code}) as response:
            assert response.status == 403
        assert staff_session.STAFF_COOKIE not in {c.key for c in client.cookie_jar}
    async with served.app.services.db.sessions() as session:
        assert (await session.scalars(select(StaffDevice))).first() is None


async def test_session_renews_on_use_and_unbinding_keeps_other_channels(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served.app.services.db.transaction() as session:
        li = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert li is not None
        li.channel, li.chat_id = "telegram", "4242"
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        async with served.app.services.db.transaction() as session:
            await session.execute(
                update(StaffDevice).values(expires_at=utcnow() + dt.timedelta(days=2))
            )
        monkeypatch.setattr(staff_session, "RENEW_AFTER", 0)
        async with client.get(f"{served.url}desk") as response:
            assert response.status == 200
            assert staff_session.STAFF_COOKIE in response.cookies
        async with served.app.services.db.sessions() as session:
            device = await session.scalar(select(StaffDevice))
            assert device is not None
            assert device.expires_at > utcnow() + dt.timedelta(days=29)
        token = await csrf_of(client, served.url)
        async with client.post(
            f"{served.url}staff/unbind", headers={"X-CSRF-Token": token}
        ) as response:
            assert response.status == 200
        assert LOGIN in await desk_page(client, served)
    async with served.app.services.db.sessions() as session:
        li = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert li is not None and (li.channel, li.chat_id) == ("telegram", "4242")
        assert li.web_chat_id is None
        device = await session.scalar(select(StaffDevice))
        assert device is not None and device.revoked_at is not None


def test_desk_links_open_screens_never_steps() -> None:
    assert open_target("case:BDB-2026-000001") == "w:view:BDB-2026-000001"
    assert open_target("question:12") == "s:show:12"
    assert open_target("project:3") == "k:view:3"
    for crafted in ("case:BDB-2026-000001:accept", "w:accept:BDB-2026-000001", "question:1:x"):
        assert open_target(crafted) is None


async def test_a_revoked_browser_gets_no_notice_waiting_for_it(served: Served) -> None:
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        li = await staff_id(served.app, "李娜")
        origin = served.url.rsplit("/", 1)[0].rstrip("/")
        ws_url = served.url.replace("http://", "ws://") + "ws"
        async with client.ws_connect(ws_url, headers={"Origin": origin}) as ws:
            assert (await ws.receive_json())["type"] == "history"
            async with served.app.services.db.transaction() as session:
                await session.execute(update(StaffDevice).values(revoked_at=utcnow()))
                outbox.enqueue(
                    session, Recipient("web", staff_web_chat(li)), "新的咨询：路灯坏了", "t:1"
                )
            assert (await ws.receive_json()) == {"type": "signed_out"}
            closing = await ws.receive()
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    async with served.app.services.db.sessions() as session:
        row = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "t:1")
        )
        assert (
            row is not None and row.status == OutboxStatus.PENDING
        )  # kept for the next signed-in browser


async def test_unbinding_closes_the_browsers_other_tabs(served: Served) -> None:
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        origin = served.url.rsplit("/", 1)[0].rstrip("/")
        ws_url = served.url.replace("http://", "ws://") + "ws"
        async with client.ws_connect(ws_url, headers={"Origin": origin}) as tab:
            assert (await tab.receive_json())["type"] == "history"
            token = await csrf_of(client, served.url)
            async with client.post(
                f"{served.url}staff/unbind", headers={"X-CSRF-Token": token}
            ) as response:
                assert response.status == 200
            assert (await tab.receive_json()) == {"type": "signed_out"}


async def test_staff_download_the_form_of_cases_their_role_sees(served: Served) -> None:
    names = await world(served.app)
    seen, unseen = names["A"].split(":")[1], names["B"].split(":")[1]
    async with new_client() as client:
        await sign_in(served, client, "许芳")  # specialist: her unit's items only
        async with client.get(f"{served.url}form/{seen}.docx") as response:
            assert response.status == 200
            assert response.headers["Content-Disposition"].startswith("attachment")
            assert (await response.read())[:2] == b"PK"
        async with client.get(f"{served.url}form/{unseen}.docx") as response:
            assert response.status == 404
    async with new_client() as stranger:
        await csrf_of(stranger, served.url)
        async with stranger.get(f"{served.url}form/{seen}.docx") as response:
            assert response.status == 404


async def test_the_staff_cookie_is_renewed_at_most_hourly(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Used within the hour: no new cookie and no write; an hour after it was signed: both."""
    async with new_client() as client:
        await sign_in(served, client, "李娜")
        (cookie,) = [c.value for c in client.cookie_jar if c.key == staff_session.STAFF_COOKIE]
        _, signed = URLSafeTimedSerializer("test-secret", salt="web-staff").loads(
            cookie, return_timestamp=True
        )

        async def desk_at(seconds_after_signing: float) -> bool:
            """Open the desk at that moment; whether the response renewed the cookie."""
            moment = signed.timestamp() + seconds_after_signing
            monkeypatch.setattr(staff_session, "time", SimpleNamespace(time=lambda: moment))
            async with client.get(f"{served.url}desk") as response:
                assert response.status == 200
                return staff_session.STAFF_COOKIE in response.cookies

        async def expiry() -> dt.datetime:
            async with served.app.services.db.sessions() as session:
                device = await session.scalar(select(StaffDevice))
                assert device is not None
                return device.expires_at

        bound = await expiry()
        assert not await desk_at(1)
        assert not await desk_at(3599)
        assert await expiry() == bound  # no write per request
        assert await desk_at(3600)
        assert await expiry() > bound
