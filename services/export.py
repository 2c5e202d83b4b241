"""台账 exports: the key-project ledger and the case list as xlsx or csv, in local time (UTC+8).

The ledger carries no personal data and may go to every lead-unit staff member; the case list
carries 联系人/联系电话 and 经办人意见 (staff need them to work the cases) but never 领导批示,
which stays with the roles that own it."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from chat.events import Document
from dialogs.fields import format_phone
from dialogs.texts import label
from storage import cases, key_projects, roster
from storage.db import Database
from storage.key_projects import TOP_LEVEL, LedgerEntry
from storage.models import Case

if TYPE_CHECKING:  # openpyxl is imported when a spreadsheet is written
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

CHINA = dt.timezone(dt.timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M"
EXCEL_TIME_FORMAT = "yyyy-mm-dd hh:mm"
BATCH = 500
PLAN_SUMMARY = 60
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas

Value = str | int | dt.datetime | None
# (phase, done, total); phase is "load" or "write"
Progress = Callable[[str, int, int], None]


class Format(StrEnum):
    XLSX = "xlsx"
    CSV = "csv"


@dataclass(frozen=True)
class Column:
    key: str
    width: int

    @property
    def header(self) -> str:
        return label("key_projects", f"col_{self.key}")


@dataclass
class Table:
    sheet: str
    columns: list[Column]
    rows: list[list[Value]] = field(default_factory=list)


LEDGER_COLUMNS = [
    Column("id", 9),
    Column("name", 28),
    Column("company", 28),
    Column("stage", 9),
    Column("team", 36),
    Column("plan", 40),
    *(Column(f"open_{level}", 13) for level in range(1, TOP_LEVEL + 1)),
    Column("last_contact", 17),
    Column("next_follow_up", 17),
    Column("case_number", 14),
]
CASE_COLUMNS = [
    Column("case_number", 14),
    Column("kind", 18),
    Column("company", 28),
    Column("name", 28),
    Column("contact_name", 10),
    Column("contact_phone", 15),
    Column("status", 11),
    Column("items", 40),
    Column("handler", 10),
    Column("handler_opinion", 36),
    Column("created_at", 17),
    Column("updated_at", 17),
]


def _local(moment: dt.datetime | None) -> dt.datetime | None:
    """Spreadsheet cells have no time zone: write the Changsha wall-clock time."""
    return moment.astimezone(CHINA).replace(tzinfo=None) if moment else None


def _summary(text: str | None) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= PLAN_SUMMARY else flat[: PLAN_SUMMARY - 1] + "…"


def ledger_row(entry: LedgerEntry) -> list[Value]:
    project = entry.project
    team = "、".join(f"{s.name}（{s.department.name}）" for s in entry.team)
    return [
        project.id,
        project.name,
        project.company,
        label("key_projects", f"stage_{project.stage}"),
        team,
        _summary(project.service_plan),
        *(entry.open_by_level.get(level, 0) for level in range(1, TOP_LEVEL + 1)),
        _local(project.last_contact_at),
        _local(project.next_follow_up_at),
        entry.case_number,
    ]


def _phone(e164: str) -> str:
    """The national format staff dial (a leading + would read as a formula in a sheet)."""
    try:
        return format_phone(e164)
    except Exception:  # a number stored before validation existed
        return e164.removeprefix("+86")


def case_row(case: Case, handlers: dict[int, str]) -> list[Value]:
    return [
        case.number,
        label("options", case.project_kind),
        case.company,
        case.project_name,
        case.contact_name,
        _phone(case.contact_phone),
        label("status", case.status),
        "、".join(item.name for item in case.items),
        handlers.get(case.handler_id) if case.handler_id else None,
        case.handler_opinion,
        _local(case.created_at),
        _local(case.updated_at),
    ]


async def ledger_table(db: Database) -> Table:
    async with db.sessions() as session:
        entries = await key_projects.ledger(session)
    sheet = label("key_projects", "ledger_sheet")
    return Table(sheet, LEDGER_COLUMNS, [ledger_row(e) for e in entries])


async def cases_table(db: Database, progress: Progress | None = None) -> Table:
    """Every case in number order, read in keyset pages so memory stays flat per page."""
    table = Table(label("key_projects", "cases_sheet"), CASE_COLUMNS)
    async with db.sessions() as session:
        total = await cases.count(session)
        last_id = 0
        while True:
            batch = await cases.case_batch(session, last_id, BATCH)
            if not batch:
                break
            handler_ids = {c.handler_id for c in batch if c.handler_id is not None}
            names = await roster.staff_names(session, handler_ids)
            table.rows += [case_row(case, names) for case in batch]
            last_id = batch[-1].id
            session.expunge_all()
            if progress:
                progress("load", len(table.rows), max(total, len(table.rows)))
    return table


# -- writers (CPU-bound: run them in a thread) -------------------------------------------


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Value) -> WriteOnlyCell:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"  # text an enterprise typed is never a formula
    elif isinstance(value, dt.datetime):
        cell.number_format = EXCEL_TIME_FORMAT
    return cell


def write_xlsx(table: Table, out: IO[bytes], progress: Progress | None = None) -> None:
    """Header row bold and frozen, column widths set; write-only mode keeps memory low."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(table.sheet)
    sheet.freeze_panes = "A2"
    for index, column in enumerate(table.columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    bold = Font(bold=True)
    header = []
    for column in table.columns:
        cell = WriteOnlyCell(sheet, value=column.header)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    total = len(table.rows)
    for done, row in enumerate(table.rows, start=1):
        sheet.append([_xlsx_cell(sheet, value) for value in row])
        if progress and (done % BATCH == 0 or done == total):
            progress("write", done, total)
    book.save(out)


def _csv_value(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime(TIME_FORMAT)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return str(value)


def write_csv(table: Table, out: IO[bytes], progress: Progress | None = None) -> None:
    """UTF-8 with a BOM, so Excel opens the Chinese text correctly."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow([column.header for column in table.columns])
    total = len(table.rows)
    for done, row in enumerate(table.rows, start=1):
        writer.writerow([_csv_value(value) for value in row])
        if progress and (done % BATCH == 0 or done == total):
            progress("write", done, total)
    text.flush()
    text.detach()


def render(table: Table, fmt: Format, progress: Progress | None = None) -> bytes:
    buffer = io.BytesIO()
    (write_xlsx if fmt == Format.XLSX else write_csv)(table, buffer, progress)
    return buffer.getvalue()


def _save(table: Table, path: Path, fmt: Format, progress: Progress | None) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        (write_xlsx if fmt == Format.XLSX else write_csv)(table, out, progress)
    os.replace(partial, path)


async def export_ledger(
    db: Database, path: Path, fmt: Format | str, progress: Progress | None = None
) -> int:
    """Write the 重点项目动态管理台账 to `path`; returns the number of projects."""
    table = await ledger_table(db)
    await asyncio.to_thread(_save, table, Path(path), Format(fmt), progress)
    return len(table.rows)


async def export_cases(
    db: Database, path: Path, fmt: Format | str, progress: Progress | None = None
) -> int:
    """Write every 帮代办 application to `path`; returns the number of cases."""
    table = await cases_table(db, progress)
    await asyncio.to_thread(_save, table, Path(path), Format(fmt), progress)
    return len(table.rows)


async def ledger_document(db: Database, now: dt.datetime | None = None) -> tuple[Document, int]:
    """The ledger as an xlsx attachment for the chat, and its number of projects."""
    table = await ledger_table(db)
    content = await asyncio.to_thread(render, table, Format.XLSX)
    day = (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).strftime("%Y%m%d")
    name = f"{label('key_projects', 'ledger_file')}_{day}.xlsx"
    return Document(name=name, content=content, mime=XLSX_MIME), len(table.rows)
