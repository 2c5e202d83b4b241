"""/desk/stats over HTTP: who may see it and what, a chosen range, bad ranges as 400s."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest
from stats_history import seed_history
from test_staff_http import new_client, sign_in

from bot.channels.web.channel import CHANNEL_KEY
from storage.models import OutboxMessage
from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)

RANGE = "?from=2025-09-29&to=2025-10-12"


async def get(served: Served, name: str | None, query: str = RANGE) -> tuple[int, str]:
    async with new_client() as client:
        if name is not None:
            await sign_in(served, client, name)
        async with client.get(f"{served.url}desk/stats{query}") as response:
            return response.status, await response.text()


def cells(page: str, caption: str) -> list[list[str]]:
    """The rows of the table with this caption, as cell texts."""
    table = page.split(f"<caption>{caption}", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows]


async def test_admin_sees_every_figure_of_the_range(served: Served) -> None:
    await seed_history(served.app)
    status, page = await get(served, "陈晨")
    assert status == 200
    assert "<h2>服务统计</h2>" in page
    assert cells(page, "申请办理情况（数据表）")[1:] == [
        ["收件", "4"], ["受理", "2"], ["不予受理", "1"], ["办结", "3"], ["送达", "2"],
    ]  # fmt: skip
    assert cells(page, "办理时长（工作日）")[1:] == [
        ["提交至受理", "2", "1", "3"],
        ["提交至办结", "3", "4", "9"],
    ]
    assert ["国土规划局", "1", "1", "0", "2", "1"] in cells(page, "分单位办理情况")
    assert ["扫码进入", "1", "0", "1", "0", "0"] in cells(page, "分渠道办理情况")
    assert ["转人工", "2"] in cells(page, "咨询处理方式")
    assert cells(page, "差评整改情况")[1] == ["1", "1", "1", "0", "0", "0"]
    assert "满意率 50.0%" in page
    assert page.count("<svg id=") == 6
    # No inline script: the one script is the page's own file (长辈模式), under the CSP.
    assert re.findall(r"<script[^>]*>", page.lower()) == ['<script src="/static/app.js">']


async def test_a_units_chief_sees_only_their_unit(served: Served) -> None:
    await seed_history(served.app)
    status, page = await get(served, "邓伟")
    assert status == 200 and "服务统计 · 国土规划局" in page
    assert [row[0] for row in cells(page, "分单位办理情况")[1:]] == ["国土规划局"]
    assert "咨询处理方式" not in page and "重点项目" not in page


async def test_others_are_refused_and_strangers_see_the_login(served: Served) -> None:
    status, page = await get(served, "许芳")
    assert status == 403 and "仅向管理员" in page
    status, page = await get(served, None)
    assert status == 401 and "工作人员登录" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=2025-13-45&to=2025-10-12", "日期格式不正确"),
        ("?from=2025-10-12", "日期格式不正确"),
        ("?from=2025-10-12&to=2025-10-01", "结束日期早于开始日期"),
        ("?from=1990-01-01&to=2025-10-01", "时间段过长"),
        ("?from=" + "9" * 5000 + "&to=2025-10-01", "日期格式不正确"),
    ],
)
async def test_a_bad_range_is_a_polite_400(served: Served, query: str, message: str) -> None:
    status, page = await get(served, "陈晨", query)
    assert status == 400 and message in page


async def download(served: Served, name: str, path: str) -> tuple[int, bytes]:
    async with new_client() as client:
        await sign_in(served, client, name)
        async with client.get(f"{served.url}{path}") as response:
            return response.status, await response.read()


async def test_the_monthly_report_notice_links_to_a_download_for_the_whole_service(
    served: Served,
) -> None:
    await seed_history(served.app)
    channel = served.web_app[CHANNEL_KEY]
    row = OutboxMessage(
        channel="web", chat_id="staff-1", idempotency_key="k", text="简报", buttons=[],
        document={"render": "monthly_report", "month": "2025-10", "format": "xlsx"},
    )  # fmt: skip
    [link] = (await channel.notice_payload(row))["links"]
    assert link["href"] == "desk/report/2025-10.xlsx"

    status, body = await download(served, "陈晨", link["href"])
    assert status == 200
    summary = openpyxl.load_workbook(io.BytesIO(body))["概要"]
    values = {row[0]: row[1] for row in summary.iter_rows(min_row=2, values_only=True)}
    assert values["收件"] == 2 and values["送达"] == 3 and values["满意率"] == "50.0%"


@pytest.mark.parametrize(
    ("name", "path", "status", "message"),
    [
        ("邓伟", "desk/report/2025-10.docx", 403, "仅向管理员"),  # one unit's chief
        ("许芳", "desk/report/2025-10.docx", 403, "仅向管理员"),
        ("陈晨", "desk/report/2025-13.docx", 400, "月份有误"),
        ("陈晨", "desk/report/2025-10.pdf", 400, "月份有误"),
        ("陈晨", "desk/report/" + "9" * 3000 + ".docx", 400, "月份有误"),
    ],
)
async def test_a_report_download_is_refused_politely(
    served: Served, name: str, path: str, status: int, message: str
) -> None:
    got, body = await download(served, name, path)
    assert got == status and message in body.decode()
