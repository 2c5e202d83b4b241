"""Lead-unit administrators at /desk: the 操作日志 with its filters and CSV, the agencies page
assigning by form; every view and export is itself a record with the client's address; an
agent sees only assigned cases on the desk and nothing once the contract has ended."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update
from test_staff_http import desk_page, make_case, new_client, shown, sign_in

from bot.app import App
from domain.policy import china_today
from storage.models import Agency, AuditRecord
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)

XJ = "xiangjiang_consulting"


async def actions(app: App) -> list[tuple[str, str | None, str | None]]:
    async with app.services.db.sessions() as session:
        rows = await session.execute(
            select(AuditRecord.action, AuditRecord.case_number, AuditRecord.client).order_by(
                AuditRecord.id
            )
        )
        return [(a, n, c) for a, n, c in rows.tuples()]


async def test_admin_assigns_at_the_desk_and_reads_the_audit_log(served: Served) -> None:
    app = served.app
    today = china_today()
    async with app.services.db.transaction() as session:
        await session.execute(
            update(Agency).values(
                contract_start=today - dt.timedelta(days=1),
                contract_end=today + dt.timedelta(days=90),
            )
        )
    mine = await make_case(app, "alpha", "construction_permit")
    other = await make_case(app, "beta", "fiscal_review")
    async with new_client() as admin, new_client() as agent, new_client() as window:
        await sign_in(served, admin, "陈晨")
        await sign_in(served, agent, "高远")
        await sign_in(served, window, "李娜")
        assert shown(await desk_page(agent, served)) == set()

        page = await desk_page(admin, served)
        assert "desk/audit" in page and "desk/agencies" in page
        async with admin.get(f"{served.url}desk/agencies") as response:
            form = await response.text()
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert token and "湘江工程咨询有限公司" in form
        fields = {"target": mine.number, "agency": XJ, "action": "assign"}
        async with admin.post(f"{served.url}desk/agencies", data=fields) as response:
            assert response.status == 403  # no CSRF token: refused
        fields["csrf"] = token.group(1)
        async with admin.post(f"{served.url}desk/agencies", data=fields) as response:
            assert response.status == 200 and "已指派" in await response.text()
        assert shown(await desk_page(agent, served)) == {f"case:{mine.number}"}
        assert other.number not in await desk_page(agent, served)

        async with window.get(f"{served.url}desk/audit") as response:
            assert response.status == 403
        async with admin.get(f"{served.url}desk/audit?case={mine.number}") as response:
            audit_page = await response.text()
        assert response.status == 200 and "指派第三方机构" in audit_page
        async with admin.get(f"{served.url}desk/audit.csv?person=高远") as response:
            body = (await response.read()).decode("utf-8-sig")
        lines = body.strip().splitlines()
        assert lines[0].startswith("时间,人员") and len(lines) == 4  # the agent's three desk views
        assert all("高远" in line and "查看待办事项" in line for line in lines[1:])

        logged = await actions(app)
        assert ("agency.assign", mine.number, "127.0.0.1") in logged
        assert ("audit.view", None, "127.0.0.1") in logged and (
            "export.audit",
            None,
            "127.0.0.1",
        ) in logged

        async with app.services.db.transaction() as session:
            await session.execute(update(Agency).values(contract_end=today - dt.timedelta(days=1)))
        async with agent.get(f"{served.url}desk") as response:
            assert response.status == 403 and mine.number not in await response.text()


async def test_web_chat_views_and_downloads_are_recorded_with_the_client_address(
    served: Served,
) -> None:
    app = served.app
    case = await make_case(app, "gamma", "construction_permit")
    origin = served.url.split("/", 3)[0] + "//" + served.url.split("/", 3)[2]
    async with new_client() as window, new_client() as stranger:
        await sign_in(served, window, "李娜")
        async with window.ws_connect(f"{served.url}ws", origin=origin) as ws:
            await ws.receive_json()  # history
            await ws.send_json({"type": "button", "data": f"w:view:{case.number}"})
            while (message := await ws.receive_json(timeout=30))["type"] != "answer":
                pass
            texts = [str(m["text"]) for m in message["messages"] if m["from"] == "bot"]
        assert any(case.number in text for text in texts)
        async with window.get(f"{served.url}form/{case.number}.docx") as response:
            assert response.status == 200 and (await response.read())[:2] == b"PK"
        async with stranger.get(f"{served.url}") as response:
            assert response.status == 200
        async with stranger.get(f"{served.url}form/{case.number}.docx") as response:
            assert response.status == 404  # not theirs: nothing served, nothing recorded
    logged = await actions(app)
    assert logged.count(("case.view", case.number, "127.0.0.1")) == 1
    assert logged.count(("download.form", case.number, "127.0.0.1")) == 1
    async with app.services.db.sessions() as session:
        record = await session.scalar(
            select(AuditRecord).where(AuditRecord.action == "download.form")
        )
    assert record is not None and record.actor_kind == "staff" and record.role == "window"
    assert record.channel == "web"
