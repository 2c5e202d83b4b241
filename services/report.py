"""The monthly 工作简报: the figures of /desk/stats for one month, as xlsx (with native Excel
charts) or docx (tables, and the page's charts as images). Written off the event loop; the
figures come from SQL aggregates. XlsxWriter, python-docx (with lxml) and Pillow are
imported only when a report is written: ≈ 35 MB that the web chat and the worker otherwise
carry (tests/bot/test_lean_imports.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path
from typing import IO, Any

from chat.events import Document
from dialogs.texts import label, labels
from services import figures as stats
from services.stat_charts import build_charts
from storage.db import Database
from storage.models import RatingLevel

FORMATS = ("xlsx", "docx")
REPORT = "monthly_report"  # an outbox row's document: this month's 工作简报
MIME = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CHART_CM = 16  # a chart image's width on an A4 page
KINDS = ("received", "accepted", "rejected", "completed", "delivered")


class BadMonth(ValueError):
    """--month is not YYYY-MM."""


def parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in text.split("-", 1))
        dt.date(year, month, 1)
    except ValueError:
        raise BadMonth(text) from None
    return year, month


async def figures_of(db: Database, year: int, month: int) -> stats.Figures:
    """The whole service's figures of one month, with the twelve months up to it."""
    span = stats.month_span(year, month)
    last_day = (span.end - dt.timedelta(seconds=1)).astimezone(stats.CHINA).date()
    async with db.sessions() as session:
        return await stats.gather(session, span, stats.StatsScope(), last_day)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def summary_rows(f: stats.Figures) -> list[tuple[str, object]]:
    """(label, value) of the report's first table."""
    kinds = labels("stats_kinds")
    rows: list[tuple[str, object]] = [(kinds[k], f.cases.get(k, 0)) for k in KINDS]
    rows += [
        (label("report", "to_accept_median"), f.to_accept.median),
        (label("report", "to_accept_p90"), f.to_accept.p90),
        (label("report", "to_complete_median"), f.to_complete.median),
        (label("report", "to_complete_p90"), f.to_complete.p90),
        (label("report", "on_time"), _percent(f.on_time_share)),
        (label("report", "answers"), f.answers.count),
        (label("report", "answered_on_time"), _percent(f.answered_share)),
        (label("report", "satisfaction"), _percent(f.satisfaction)),
        (label("report", "bad_opened"), f.bad.opened),
        (label("report", "bad_followed"), _percent(f.bad_followed_up_on_time)),
        (label("report", "problems_solved"), f.problems_solved),
    ]
    return [(name, "—" if value is None else value) for name, value in rows]


def _tables(f: stats.Figures) -> list[tuple[str, list[str], list[list[object]]]]:
    """(sheet, header, rows) of every table, in the report's order."""
    kinds = labels("stats_kinds")
    channels = labels("stats_channels")
    head = [kinds[k] for k in KINDS]
    return [
        (
            label("report", "summary"),
            [label("report", "item"), label("report", "value")],
            [list(r) for r in summary_rows(f)],
        ),
        (
            label("report", "units"),
            [label("report", "unit"), *head],
            [[name, *(c.get(k, 0) for k in KINDS)] for name, c in f.by_unit],
        ),
        (
            label("report", "channels"),
            [label("report", "channel"), *head],
            [[channels.get(key, key), *(c.get(k, 0) for k in KINDS)] for key, c in f.by_channel],
        ),
        (
            label("report", "ratings"),
            [label("report", "level"), label("report", "count")],
            [[label("rating_levels", lv), f.ratings.get(lv, 0)] for lv in RatingLevel],
        ),
        (
            label("report", "months"),
            [label("report", "month"), kinds["received"], kinds["delivered"],
             label("report", "satisfaction")],
            [[r.month, r.received, r.delivered,
              None if r.satisfaction is None else round(r.satisfaction * 100, 1)]
             for r in f.months],
        ),
    ]  # fmt: skip


def write_xlsx(f: stats.Figures, title: str, path: Path | IO[bytes]) -> None:
    """One sheet per table; native column charts (ratings, units) and a line chart (months)."""
    import xlsxwriter

    target = str(path) if isinstance(path, Path) else path
    book = xlsxwriter.Workbook(target, {"in_memory": True})
    bold = book.add_format({"bold": True})
    for sheet_name, header, rows in _tables(f):
        sheet = book.add_worksheet(sheet_name)
        sheet.write_row(0, 0, header, bold)
        for index, row in enumerate(rows, start=1):
            sheet.write_row(index, 0, row)
        sheet.set_column(0, 0, 28)
        if not rows or sheet_name == label("report", "summary"):
            if sheet_name == label("report", "summary"):
                sheet.write(len(rows) + 2, 0, title, bold)
            continue
        last = len(rows)
        kind = "line" if sheet_name == label("report", "months") else "column"
        chart = book.add_chart({"type": kind})
        series_columns = [1, 2] if kind == "line" else [1]
        for column in series_columns:
            chart.add_series(
                {
                    "name": [sheet_name, 0, column],
                    "categories": [sheet_name, 1, 0, last, 0],
                    "values": [sheet_name, 1, column, last, column],
                }
            )
        chart.set_title({"name": sheet_name})
        sheet.insert_chart(1, len(header) + 1, chart)
    book.close()


def write_docx(f: stats.Figures, title: str, path: Path | IO[bytes]) -> None:
    """A heading, the page's charts as images (each titled, its title also the image's
    alternative text), and one table per section with the charts' numbers."""
    from docx import Document as Docx
    from docx.shared import Cm

    from services import chart_png

    document = Docx()
    document.add_heading(title, level=1)
    for chart in build_charts(f):
        document.add_paragraph(chart.title, style="Caption")
        picture = document.add_picture(io.BytesIO(chart_png.png(chart)), width=Cm(CHART_CM))
        picture._inline.docPr.set("descr", chart.title)  # read out by screen readers
    for heading, header, rows in _tables(f):
        document.add_heading(heading, level=2)
        table = document.add_table(rows=1, cols=len(header))
        table.style = "Table Grid"
        for cell, text in zip(table.rows[0].cells, header, strict=True):
            cell.text = str(text)
        for row in rows:
            cells = table.add_row().cells
            for cell, value in zip(cells, row, strict=True):
                cell.text = "—" if value is None else str(value)
    document.save(str(path) if isinstance(path, Path) else path)


def title_of(year: int, month: int) -> str:
    return f"{label('report', 'title')} {year}-{month:02d}"


async def write_report(db: Database, month: str, fmt: str, out: Path) -> stats.Figures:
    """`bangdaiban report`: the month's 工作简报 written to `out`."""
    year, number = parse_month(month)
    figures = await figures_of(db, year, number)
    writer = write_xlsx if fmt == "xlsx" else write_docx
    await asyncio.to_thread(writer, figures, title_of(year, number), out)
    return figures


def report_spec(month: str, fmt: str) -> dict[str, Any]:
    """What an outbox row carries to say 'attach this month's 工作简报'."""
    return {"render": REPORT, "month": month, "format": fmt}


def file_name(month: str, fmt: str) -> str:
    return f"{label('report', 'title')}-{month}.{fmt}"


def _render(figures: stats.Figures, title: str, fmt: str) -> bytes:
    out = io.BytesIO()
    (write_xlsx if fmt == "xlsx" else write_docx)(figures, title, out)
    return out.getvalue()


async def report_document(db: Database, month: str, fmt: str) -> Document:
    """The month's 工作简报 as a document to send (rendered off the event loop)."""
    year, number = parse_month(month)
    fmt = fmt if fmt in FORMATS else "docx"
    figures = await figures_of(db, year, number)
    content = await asyncio.to_thread(_render, figures, title_of(year, number), fmt)
    return Document(file_name(f"{year}-{number:02d}", fmt), content, MIME[fmt])
