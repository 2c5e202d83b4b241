"""台账 exports: the key-project ledger and the case list as xlsx or csv, in local time (UTC+8).

The ledger carries no personal data and may go to every lead-unit staff member; the case list
carries 联系人/联系电话 and 经办人意见 (staff need them to work the cases) but never 领导批示,
which stays with the roles that own it."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Document
from dialogs.fields import format_phone
from dialogs.texts import label
from storage import cases, key_projects
from storage.cases import CaseLine
from storage.db import Database
from storage.key_projects import TOP_LEVEL, LedgerLine

CHINA = dt.timezone(dt.timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M"
EXCEL_TIME_FORMAT = "yyyy-mm-dd hh:mm"
BATCH = 500
PLAN_SUMMARY = 60
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas

Value = str | int | dt.datetime | None
# (phase, done, total); phase is "write" (rows are read and written batch by batch)
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


def _summary(text: str | None) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= PLAN_SUMMARY else flat[: PLAN_SUMMARY - 1] + "…"


def ledger_row(line: LedgerLine) -> list[Value]:
    team = "、".join(f"{name}（{unit}）" for name, unit in line.team)
    return [
        line.id,
        line.name,
        line.company,
        label("key_projects", f"stage_{line.stage}"),
        team,
        _summary(line.service_plan),
        *(line.open_by_level.get(level, 0) for level in range(1, TOP_LEVEL + 1)),
        line.last_contact_at,
        line.next_follow_up_at,
        line.case_number,
    ]


def _phone(e164: str) -> str:
    """The national format staff dial (a leading + would read as a formula in a sheet)."""
    if len(e164) == 14 and e164.startswith("+861") and e164[1:].isdigit():
        return f"{e164[3:6]} {e164[6:10]} {e164[10:]}"  # a mobile: format_phone's result, fast
    try:
        return format_phone(e164)
    except Exception:  # a number stored before validation existed
        return e164.removeprefix("+86")


def case_row(case: CaseLine) -> list[Value]:
    (number, kind, company, name, contact, phone, status, items, handler, opinion, created,
     updated) = case  # fmt: skip
    return [
        number,
        label("options", kind),
        company,
        name,
        contact,
        _phone(phone),
        label("status", status),
        "、".join(items),
        handler,
        opinion,
        created,
        updated,
    ]


# -- writers: rows go out batch by batch, so memory stays flat in the row count ----------


class RowWriter(Protocol):
    def write(self, rows: Sequence[Sequence[Value]]) -> None: ...

    def close(self) -> None: ...


# Characters XML 1.0 (and so a sheet) cannot hold; an enterprise's text may carry them.
ILLEGAL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Excel's day 0 (its serial dates count days from here), naive and in Changsha time.
EXCEL_EPOCH = dt.datetime(1899, 12, 31)
EXCEL_EPOCH_CHINA = EXCEL_EPOCH.replace(tzinfo=CHINA)
DAY_SECONDS = 86_400.0
EXCEL_LEAP_BUG_FROM = 61  # days: XlsxWriter's own conversion handles the dates before 1900-03-01


def _local(moment: dt.datetime) -> dt.datetime:
    """Spreadsheet cells have no time zone: the Changsha wall-clock time (naive is taken as
    already local)."""
    return moment.astimezone(CHINA).replace(tzinfo=None) if moment.tzinfo else moment


def excel_serial(moment: dt.datetime) -> float | None:
    """The Changsha wall-clock time of `moment` as Excel's serial date, to the bit what
    XlsxWriter's `write_datetime` stores (its arithmetic without its per-cell checks); None
    before 1900-03-01, where Excel's calendar is odd and XlsxWriter's own conversion is used."""
    delta = moment - (EXCEL_EPOCH_CHINA if moment.tzinfo else EXCEL_EPOCH)
    if delta.days < EXCEL_LEAP_BUG_FROM:
        return None
    # 1900 counts as a leap year in Excel: every serial from 1900-03-01 on is one day more.
    return delta.days + (delta.seconds + delta.microseconds / 1e6) / DAY_SECONDS + 1


class XlsxWriter:
    """Header row bold and frozen, column widths set, in XlsxWriter's constant-memory mode
    (each row goes to the sheet's row file as it is written; several times faster than
    openpyxl's write-only sheet, measured in bench/scale_bench.py); text is never read as a
    formula, a number or a link.

    The data rows' cells are written as the XML XlsxWriter itself writes for them in that
    mode (an inline string, or a number with its style), straight into the sheet's row
    file: XlsxWriter's per-cell path (argument decorator, dimension check, cell tuple, then
    attribute lists and three regular expressions per string) was two thirds of a 100k-case
    export's CPU. A string that needs XlsxWriter's escapes (control characters, `_xHHHH_`,
    surrounding whitespace) goes through XlsxWriter's own escaping; tests/handlers/
    test_export.py checks the sheet against XlsxWriter's typed writers cell for cell."""

    def __init__(self, out: IO[bytes], sheet_name: str, columns: list[Column]) -> None:
        import xlsxwriter
        from xlsxwriter.utility import xl_col_to_name

        self.book = xlsxwriter.Workbook(
            out,
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
                "default_date_format": EXCEL_TIME_FORMAT,
            },
        )
        self.sheet = self.book.add_worksheet(sheet_name)
        self.time = self.book.add_format({"num_format": EXCEL_TIME_FORMAT})
        bold = self.book.add_format({"bold": True})
        for index, column in enumerate(columns):
            self.sheet.set_column(index, index, column.width)
            self.sheet.write_string(0, index, column.header, bold)
        self.sheet.freeze_panes(1, 0)
        self.letters = [xl_col_to_name(index) for index in range(len(columns))]
        self.row = 0

    def write(self, rows: Sequence[Sequence[Value]]) -> None:
        sheet, letters = self.sheet, self.letters
        if self.row == 0:
            sheet._write_single_row(1)  # the header row, as writing row 1 would flush it
        time_style = f' s="{self.time._get_xf_index()}"'
        parts: list[str] = []
        add = parts.append
        for row in rows:
            self.row += 1
            number = str(self.row + 1)
            add(f'<row r="{number}">')
            for column, value in enumerate(row):
                if isinstance(value, str):
                    if not value.isprintable():
                        value = ILLEGAL_CHARACTERS.sub("", value)
                    if value:
                        add(_inline_string(sheet, f"{letters[column]}{number}", value))
                elif value is None:
                    continue
                elif isinstance(value, dt.datetime):
                    serial = excel_serial(value)
                    if serial is None:  # before 1900-03-01: XlsxWriter's own conversion
                        serial = sheet._convert_date_time(_local(value))
                    add(f'<c r="{letters[column]}{number}"{time_style}><v>{serial:.16G}</v></c>')
                else:
                    add(f'<c r="{letters[column]}{number}"><v>{value:.16G}</v></c>')
            add("</row>")
        if rows:
            sheet.fh.write("".join(parts))
            sheet._check_dimensions(self.row, 0)  # the sheet's extent, as each cell would
            sheet.previous_row = self.row + 1

    def close(self) -> None:
        self.book.close()


def _inline_string(sheet: Any, ref: str, value: str) -> str:
    """A string cell as XlsxWriter's constant-memory mode writes it."""
    if "_x" in value or not value.isprintable() or value[0].isspace() or value[-1].isspace():
        from xlsxwriter.utility import _preserve_whitespace

        value = sheet._escape_control_characters(value)
        space = ' xml:space="preserve"' if _preserve_whitespace(value) else ""
    else:
        space = ""
    if "&" in value or "<" in value or ">" in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{value}</t></is></c>'


def _csv_value(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return _local(value).strftime(TIME_FORMAT)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return str(value)


class CsvWriter:
    """UTF-8 with a BOM, so Excel opens the Chinese text correctly."""

    def __init__(self, out: IO[bytes], sheet_name: str, columns: list[Column]) -> None:
        self.text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.text)
        self.writer.writerow([column.header for column in columns])

    def write(self, rows: Sequence[Sequence[Value]]) -> None:
        self.writer.writerows([_csv_value(value) for value in row] for row in rows)

    def close(self) -> None:
        self.text.flush()
        self.text.detach()


def open_writer(fmt: Format, out: IO[bytes], sheet_name: str, columns: list[Column]) -> RowWriter:
    return (XlsxWriter if fmt == Format.XLSX else CsvWriter)(out, sheet_name, columns)


def write_table(table: Table, out: IO[bytes], fmt: Format) -> None:
    writer = open_writer(fmt, out, table.sheet, table.columns)
    writer.write(table.rows)
    writer.close()


def render(table: Table, fmt: Format) -> bytes:
    buffer = io.BytesIO()
    write_table(table, buffer, fmt)
    return buffer.getvalue()


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[bytes]]:
    """Write beside the target, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


async def export_ledger(
    db: Database, path: Path, fmt: Format | str, progress: Progress | None = None
) -> int:
    """Write the 重点项目动态管理台账 to `path`; returns the number of projects. Read and
    written a batch of projects at a time, like the case list."""
    sheet = label("key_projects", "ledger_sheet")
    with _replacing(Path(path)) as out:
        return await _stream(db, out, Format(fmt), sheet, LEDGER_COLUMNS, _LedgerRows(), progress)


async def export_cases(
    db: Database, path: Path, fmt: Format | str, progress: Progress | None = None
) -> int:
    """Write every 帮代办 application to `path`, in number order; returns the number of
    cases. Keyset pages of BATCH cases are read and written one after the other, so memory
    stays flat however many cases there are."""
    sheet = label("key_projects", "cases_sheet")
    with _replacing(Path(path)) as out:
        return await _stream(db, out, Format(fmt), sheet, CASE_COLUMNS, _CaseRows(), progress)


Rows = list[list[Value]]


class Batches(Protocol):
    """A sheet's rows in keyset batches: the count first, then (last id read, rows) after an
    id until the rows are none."""

    async def count(self, session: AsyncSession) -> int: ...

    async def after(self, session: AsyncSession, after_id: int) -> tuple[int, Rows]: ...


class _CaseRows:
    async def count(self, session: AsyncSession) -> int:
        return await cases.count(session)

    async def after(self, session: AsyncSession, after_id: int) -> tuple[int, Rows]:
        last_id, batch = await cases.export_batch(session, after_id, BATCH)
        return last_id, [case_row(case) for case in batch]


class _LedgerRows:
    async def count(self, session: AsyncSession) -> int:
        return await key_projects.count_listing(session, None)

    async def after(self, session: AsyncSession, after_id: int) -> tuple[int, Rows]:
        last_id, batch = await key_projects.ledger_batch(session, after_id, BATCH)
        return last_id, [ledger_row(line) for line in batch]


async def _stream(
    db: Database,
    out: IO[bytes],
    fmt: Format,
    sheet: str,
    columns: list[Column],
    batches: Batches,
    progress: Progress | None,
) -> int:
    """Rows from `batches` into a writer for `out`, batch by batch; returns how many."""
    done = 0
    writer = await asyncio.to_thread(open_writer, fmt, out, sheet, columns)
    writing: asyncio.Future[None] | None = None
    async with db.sessions() as session:
        total = await batches.count(session)
        last_id = 0
        # The next batch is read while the writer's thread writes this one: at most two
        # batches are held at any time.
        while True:
            last_id, rows = await batches.after(session, last_id)
            if not rows:
                break
            if writing is not None:
                await writing
                if progress:
                    progress("write", done, max(total, done))
            writing = asyncio.ensure_future(asyncio.to_thread(writer.write, rows))
            done += len(rows)
    if writing is not None:
        await writing
        if progress:
            progress("write", done, max(total, done))
    await asyncio.to_thread(writer.close)
    return done


async def ledger_document(db: Database, now: dt.datetime | None = None) -> tuple[Document, int]:
    """The ledger as an xlsx attachment for the chat, and its number of projects (written
    batch by batch to a temporary file, then read once)."""
    with tempfile.TemporaryDirectory(prefix="bdb-ledger-") as folder:
        path = Path(folder) / "ledger.xlsx"
        count = await export_ledger(db, path, Format.XLSX)
        content = await asyncio.to_thread(path.read_bytes)
    day = (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).strftime("%Y%m%d")
    name = f"{label('key_projects', 'ledger_file')}_{day}.xlsx"
    return Document(name=name, content=content, mime=XLSX_MIME), count
