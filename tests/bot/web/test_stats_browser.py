"""/desk/stats in a real headless Chromium: each chart is drawn (its bars or lines have a
size on the page) and its table is there, under the page's strict CSP."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect
from stats_history import seed_history

from test_staff_browser import bind_browser, invite
from webserver import Served, browser_fixture, served_fixture  # noqa: F401 (fixtures, found by their names)


@pytest.mark.parametrize("backend", ["embedded"])
async def test_stats_page_draws_each_chart_with_its_table(served: Served, browser: Browser) -> None:
    await seed_history(served.app)
    _, code = await invite(served.app, "陈晨")
    page = await browser.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    await bind_browser(page, served.url, code)
    await page.goto(f"{served.url}desk/stats?from=2025-09-29&to=2025-10-12")
    await expect(page.get_by_role("heading", name="服务统计")).to_be_visible()
    charts = page.locator("figure.chart > svg")
    assert await charts.count() == 6
    for index in range(6):
        chart = charts.nth(index)
        title = await chart.locator("title").first.text_content()
        box = await chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, title
        shapes = chart.locator("rect.bar, polyline.line")
        assert await shapes.count() > 0, title
        table = page.get_by_role("table", name=str(title))
        await expect(table).to_be_visible()
    flow = page.locator("figure.chart > svg").first.locator("rect.bar")
    heights = [float(await flow.nth(i).get_attribute("height") or 0) for i in range(5)]
    assert heights[0] > heights[1] > 0  # 收件 4 drawn taller than 受理 2
    rows = page.get_by_role("table", name="申请办理情况").get_by_role("row")
    await expect(rows.nth(1)).to_contain_text("收件")
    await expect(rows.nth(1)).to_contain_text("4")
    assert refused == []
    await page.get_by_label("开始日期").fill("2025-10-09")
    await page.get_by_label("结束日期").fill("2025-10-09")
    await page.get_by_role("button", name="查询").click()
    await expect(page.get_by_text("统计时段：2025-10-09 至 2025-10-09")).to_be_visible()
