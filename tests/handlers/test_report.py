"""The monthly 工作简报: `bangdaiban report` writes the month's figures as xlsx (with native
charts) and docx; both read back (openpyxl, python-docx) with the hand-worked figures."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest
from docx import Document as Docx
from PIL import Image
from stats_history import seed_history
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from services import chart_png, charts, report


async def test_october_report_reads_back_in_xlsx_and_docx(app: App, tmp_path: Path) -> None:
    await seed_history(app)
    xlsx, docx = tmp_path / "r.xlsx", tmp_path / "r.docx"
    await report.write_report(app.services.db, "2025-10", "xlsx", xlsx)
    await report.write_report(app.services.db, "2025-10", "docx", docx)

    # October: C3 and C5 received; C1, C2 accepted; C3 rejected; C1, C2, C4 completed and
    # delivered (C4 on the 13th); ratings 非常满意 and 不满意 → 满意率 50 %.
    expected = {"收件": 2, "受理": 2, "不予受理": 1, "办结": 3, "送达": 3, "满意率": "50.0%"}
    book = openpyxl.load_workbook(xlsx)
    summary = {row[0]: row[1] for row in book["概要"].iter_rows(min_row=2, values_only=True)}
    assert {key: summary[key] for key in expected} == expected
    assert summary["提交至办结（工作日，中位数）"] == 4  # 2, 4 and 9 working days
    ratings = {r[0]: r[1] for r in book["好差评"].iter_rows(min_row=2, values_only=True)}
    assert ratings == {"非常满意": 1, "满意": 0, "基本满意": 0, "不满意": 1, "非常不满意": 0}
    months = list(book["近12个月"].iter_rows(min_row=2, values_only=True))
    assert months[-1] == ("2025-10", 2, 3, 50.0) and len(months) == 12
    assert len(book["好差评"]._charts) == 1 and len(book["近12个月"]._charts) == 1

    document = Docx(str(docx))
    tables = {t.rows[0].cells[0].text: t for t in document.tables}
    rows = {r.cells[0].text: r.cells[1].text for r in tables["项目"].rows[1:]}
    assert {key: rows[key] for key in expected} == {k: str(v) for k, v in expected.items()}
    assert "帮代办服务工作简报 2025-10" in document.paragraphs[0].text
    # The page's six charts as images, each titled (alternative text) as on the page.
    titles = [s._inline.docPr.get("descr") for s in document.inline_shapes]
    assert titles == ["申请办理情况", "各渠道收件量", "好差评分布", "近12个月收件与送达",
                      "近12个月满意率", "重点项目问题（按层级，未解决）"]  # fmt: skip
    # The 好差评 chart: a bar above 非常满意 and 不满意 (one each), none above the others.
    blip = document.inline_shapes[2]._inline.graphic.graphicData.pic.blipFill.blip
    image = Image.open(io.BytesIO(document.part.related_parts[blip.embed].blob)).convert("RGB")
    slot = (charts.WIDTH - charts.LEFT - charts.RIGHT) / 5
    above_base = (charts.HEIGHT - charts.BOTTOM - 20) * chart_png.SCALE  # clear of the "0"
    drawn = [
        image.getpixel(
            (int((chart_png.PAD + charts.LEFT + slot * (i + 0.25)) * chart_png.SCALE), above_base)
        )
        != (255, 255, 255)
        for i in range(5)
    ]
    assert drawn == [True, False, False, True, False]


@pytest.mark.parametrize("backend", ["embedded"])
def test_report_command_refuses_a_bad_month_and_format(app: App) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["report", "--month", "2025-13", "--out", "x.xlsx"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    bad = runner.invoke(cli, ["report", "--month", "2025-10", "--out", "x", "--format", "pdf"])
    assert bad.exit_code == 2 and "xlsx" in bad.output
