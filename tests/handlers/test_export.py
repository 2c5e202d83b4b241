"""台账 exports read back: xlsx with openpyxl, csv with the csv module; and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import event, insert, select, update
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from services import export
from services.export import BATCH, export_cases, export_ledger, ledger_document
from storage import applicants, key_projects
from storage.key_projects import Stage
from storage.models import Case, CaseItem, Staff
from support import Chat, case_values, fill_application

LEDGER_HEADERS = [
    "项目编号",
    "项目名称",
    "建设单位",
    "阶段",
    "推进团队",
    "代办方案（摘要）",
    "未解决问题L1",
    "未解决问题L2",
    "未解决问题L3",
    "未解决问题L4",
    "最近联系",
    "下次回访",
    "申请编号",
]
CASE_HEADERS = [
    "申请编号",
    "项目类型",
    "建设单位",
    "项目名称",
    "联系人",
    "联系电话",
    "状态",
    "申请事项",
    "经办人",
    "经办人意见",
    "提交时间",
    "最近更新",
]
CONTACT = dt.datetime(2026, 10, 9, 2, 30, tzinfo=dt.UTC)  # 10:30 in Changsha
FOLLOW_UP = dt.datetime(2026, 10, 23, 2, 30, tzinfo=dt.UTC)
SUBMITTED = dt.datetime(2026, 9, 30, 16, 5, tzinfo=dt.UTC)  # 10-01 00:05 in Changsha
PLAN = "并联办理施工许可与消防审查；环评实行告知承诺制；" * 5


async def prepare(app: App) -> str:
    """A key case with its project, and a project in negotiation with problems and a plan."""
    enterprise = Chat(app.router, "ent")
    await fill_application(enterprise, kind="重点产业项目", items=("施工许可",))
    await enterprise.press("提交")
    async with app.services.db.transaction() as session:
        case = await session.scalar(select(Case))
        assert case is not None
        await key_projects.create_for_case(session, case)
        case.handler_opinion = "=1+1 材料齐全"  # looks like a formula; must stay text
        case.leader_instruction = "机密批示内容"
        case.created_at = case.updated_at = SUBMITTED
        sun = await session.scalar(select(Staff).where(Staff.name == "孙悦"))
        assert sun is not None
        project = await key_projects.create(
            session,
            "智能网联测试基地",
            "湖南智行科技有限公司",
            Stage.NEGOTIATING,
            sun.id,
            None,
            [sun.id],
        )
        project.service_plan = PLAN
        key_projects.record_contact(project, CONTACT, FOLLOW_UP)
        for level in (1, 1, 3):
            problem = await key_projects.raise_problem(session, project, "问题", sun.id, CONTACT)
            problem.level = level
        solved = await key_projects.raise_problem(session, project, "已解决", sun.id, CONTACT)
        solved.status = "resolved"
        return case.number


async def test_ledger_xlsx_reads_back(app: App, tmp_path: Path) -> None:
    number = await prepare(app)
    path = tmp_path / "ledger.xlsx"
    assert await export_ledger(app.services.db, path, "xlsx") == 2
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == LEDGER_HEADERS
    assert sheet["A1"].font.b and sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["B"].width >= 20
    applied, negotiating = rows[1], rows[2]
    assert applied[1:4] == ("星城智造产业园一期", "湖南星城智造科技有限公司", "已申请")
    assert applied[4] == "周静（政务服务中心）、赵刚（产业促进局）"
    assert applied[6:10] == (0, 0, 0, 0) and applied[12] == number
    assert negotiating[3] == "洽谈中" and "孙悦（产业促进局）" in negotiating[4]
    assert negotiating[5].startswith("并联办理施工许可") and negotiating[5].endswith("…")
    assert len(negotiating[5]) == 60
    assert negotiating[6:10] == (2, 0, 1, 0)
    assert negotiating[10] == dt.datetime(2026, 10, 9, 10, 30)  # local time
    assert negotiating[11] == dt.datetime(2026, 10, 23, 10, 30)
    assert negotiating[12] is None


async def test_ledger_csv_reads_back_with_a_bom(app: App, tmp_path: Path) -> None:
    await prepare(app)
    path = tmp_path / "ledger.csv"
    await export_ledger(app.services.db, path, "csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == LEDGER_HEADERS
    assert rows[2][1] == "智能网联测试基地" and rows[2][6:10] == ["2", "0", "1", "0"]
    assert rows[2][10:12] == ["2026-10-09 10:30", "2026-10-23 10:30"]


async def test_cases_export_has_contacts_and_opinion_but_no_instruction(
    app: App, tmp_path: Path
) -> None:
    number = await prepare(app)
    xlsx, csv_path = tmp_path / "cases.xlsx", tmp_path / "cases.csv"
    assert await export_cases(app.services.db, xlsx, "xlsx") == 1
    assert await export_cases(app.services.db, csv_path, "csv") == 1
    sheet = openpyxl.load_workbook(xlsx).active
    assert sheet is not None
    header, row = list(sheet.iter_rows(values_only=True))
    assert list(header) == CASE_HEADERS
    assert row[:8] == (
        number,
        "重点产业项目",
        "湖南星城智造科技有限公司",
        "星城智造产业园一期",
        "张伟",
        "138 0013 8000",
        "已提交",
        "建筑工程施工许可证",
    )
    assert row[9] == "=1+1 材料齐全" and sheet["J2"].data_type == "s"
    assert row[10] == dt.datetime(2026, 10, 1, 0, 5)
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == CASE_HEADERS and rows[1][0] == number
    assert rows[1][9] == "'=1+1 材料齐全"  # neutralised for spreadsheet programs
    assert rows[1][10] == "2026-10-01 00:05"
    assert "机密批示" not in csv_path.read_text(encoding="utf-8-sig")
    assert all("机密批示" not in str(v) for r in sheet.iter_rows(values_only=True) for v in r)


async def test_ledger_document_for_the_chat(app: App) -> None:
    await prepare(app)
    document, count = await ledger_document(app.services.db)
    assert count == 2 and document.name.startswith("重点项目台账_")
    sheet = openpyxl.load_workbook(io.BytesIO(document.content)).active
    assert sheet is not None and sheet.max_row == 3


def test_cli_exports_both_tables(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": ""}
    assert runner.invoke(cli, ["seed"], env=env).exit_code == 0
    out = tmp_path / "out" / "ledger.csv"
    result = runner.invoke(cli, ["export", "ledger", "--format", "csv", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert next(csv.reader(handle)) == LEDGER_HEADERS
    out = tmp_path / "cases.xlsx"
    result = runner.invoke(cli, ["export", "cases", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None and [c.value for c in sheet[1]] == CASE_HEADERS
    bad = runner.invoke(cli, ["export", "cases", "--format", "pdf", "--out", str(out)], env=env)
    assert bad.exit_code == 2


async def test_updated_rows_keep_their_values(app: App, tmp_path: Path) -> None:
    await prepare(app)
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(status="in_progress"))
    path = tmp_path / "cases.csv"
    await export_cases(app.services.db, path, "csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle))[1][6] == "办理中"


async def test_the_case_export_streams_every_case_batch_by_batch(app: App, tmp_path: Path) -> None:
    """More cases than two batches: each row once, in number order, with its own items and
    handler; progress is reported per batch as rows are written."""
    count = 2 * BATCH + 37
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", "bulk")
        handler = await session.scalar(select(Staff).where(Staff.name == "李娜"))
        assert handler is not None
        await session.flush()
        await session.execute(
            insert(Case),
            [
                case_values(
                    f"BDB-2026-{n:06d}",
                    applicant.id,
                    project_name=f"批量项目{n}",
                    handler_id=handler.id if n % 2 else None,
                )
                for n in range(1, count + 1)
            ],
        )
        ids = dict((await session.execute(select(Case.number, Case.id))).tuples().all())
        await session.execute(
            insert(CaseItem),
            [
                {"case_id": ids[f"BDB-2026-{n:06d}"], "name": f"事项{n}-{k}"}
                for n in range(1, count + 1)
                for k in range(n % 3)
            ],
        )
    seen: list[tuple[str, int, int]] = []
    csv_path, xlsx_path = tmp_path / "cases.csv", tmp_path / "cases.xlsx"
    assert await export_cases(app.services.db, csv_path, "csv", lambda *p: seen.append(p)) == count
    assert seen == [("write", done, count) for done in (BATCH, 2 * BATCH, count)]
    assert await export_cases(app.services.db, xlsx_path, "xlsx") == count
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    sheet = openpyxl.load_workbook(xlsx_path, read_only=True).active
    assert sheet is not None
    cells = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(cells) == count
    for n, (row, cell) in enumerate(zip(rows, cells, strict=True), start=1):
        assert row[0] == cell[0] == f"BDB-2026-{n:06d}"
        assert row[3] == cell[3] == f"批量项目{n}"
        items = "、".join(f"事项{n}-{k}" for k in range(n % 3))
        assert row[7] == items and (cell[7] or "") == items
        assert row[8] == ("李娜" if n % 2 else "") and cell[8] == ("李娜" if n % 2 else None)
    assert not csv_path.with_name("cases.csv.part").exists()


def test_mobile_numbers_are_written_as_the_dialog_formats_them() -> None:
    from dialogs.fields import format_phone
    from services.export import _phone

    for number in ("+8613800138000", "+8619912345678", "+8617000000001", "+8673188880101"):
        assert _phone(number) == format_phone(number)


def test_dates_are_the_serials_xlsxwriter_would_store() -> None:
    """The case export turns dates into Excel serials itself: the sheet holds the same
    numbers, to the last digit, as XlsxWriter's own `write_datetime` of the Changsha
    wall-clock time (dates before 1900-03-01 are left to XlsxWriter)."""
    import re
    import zipfile

    import xlsxwriter

    from services.export import CHINA, Column, Format, Table, render

    moments = [
        SUBMITTED,
        dt.datetime(2026, 10, 9, 2, 30, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 29, 23, 59, tzinfo=CHINA),
        dt.datetime(1900, 3, 1, 0, 0, 1, tzinfo=CHINA),
        dt.datetime(1900, 2, 28, 12, 0, tzinfo=CHINA),
        dt.datetime(2030, 1, 1, 12, 0),  # naive: already local
    ]

    def numbers(content: bytes) -> list[str]:
        with zipfile.ZipFile(io.BytesIO(content)) as book:
            return re.findall(r"<v>([^<]*)</v>", book.read("xl/worksheets/sheet1.xml").decode())

    ours = render(Table("s", [Column("created_at", 17)], [[m] for m in moments]), Format.XLSX)
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"constant_memory": True})
    sheet = book.add_worksheet("s")
    for row, moment in enumerate(moments, start=1):
        local = moment.astimezone(CHINA).replace(tzinfo=None) if moment.tzinfo else moment
        sheet.write_datetime(row, 0, local)
    book.close()
    assert numbers(ours) == numbers(buffer.getvalue()) and len(numbers(ours)) == len(moments)


async def test_the_ledger_streams_batch_by_batch_with_counts_from_sql(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More projects than batches of 2: each project once, in id order, with its own team
    and its open problems counted by level; the statements per batch do not grow with it."""
    monkeypatch.setattr(export, "BATCH", 2)
    async with app.services.db.transaction() as session:
        people = dict((await session.execute(select(Staff.name, Staff.id))).tuples().all())
        for n in range(7):
            extra = [people["冯雪"]] * (n % 2)
            project = await key_projects.create(
                session, f"项目{n}", f"企业{n}", Stage.SIGNED, extra_members=extra
            )
            for level in range(1, n % 4 + 2):
                problem = await key_projects.raise_problem(
                    session, project, "问题", people["周静"], CONTACT
                )
                problem.level = level
            solved = await key_projects.raise_problem(
                session, project, "好了", people["周静"], CONTACT
            )
            solved.status = "resolved"
    statements = 0

    def seen(*_: object) -> None:
        nonlocal statements
        statements += 1

    engine = app.services.db.engine.sync_engine
    path = tmp_path / "ledger.csv"
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert await export_ledger(app.services.db, path, "csv") == 7
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements <= 1 + 3 * 4 + 1  # the count, three a batch of 2, the empty end
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [row[1] for row in rows] == [f"项目{n}" for n in range(7)]
    for n, row in enumerate(rows):
        team = "周静（政务服务中心）、赵刚（产业促进局）" + ("、冯雪（财政局）" if n % 2 else "")
        assert row[4] == team
        assert row[6:10] == ["1" if level <= n % 4 + 1 else "0" for level in range(1, 5)]


def test_the_sheet_is_what_xlsxwriters_typed_writers_write() -> None:
    """The case list writes its cells' XML itself (services/export.py): every part of the
    file, the sheet included, is byte for byte what XlsxWriter's `write_string`,
    `write_number` and `write_datetime` write in constant-memory mode, for text that needs
    escaping, whitespace, XlsxWriter's `_xHHHH_` escapes, control characters, numbers, empty
    cells and dates on both sides of 1900-03-01; over two batches."""
    import zipfile

    import xlsxwriter

    from services.export import (
        CHINA,
        EXCEL_TIME_FORMAT,
        ILLEGAL_CHARACTERS,
        Column,
        XlsxWriter,
    )

    texts = [
        "湖南星城智造科技有限公司",
        "A&B <公司> \"引号\" 'x'",
        " 前后有空格 ",
        "行一\n行二",
        "制表\t符",
        "回车\r结束",
        "含\x01\x1f控制字符",
        "_x0041_ 与 _x005F_",
        "=1+1",
        "\u3000全角空格开头",
        "非字符\ufffe",
        "",
        "x",
    ]
    columns = [Column("id", 10), Column("name", 12), Column("created_at", 14), Column("plan", 16)]
    rows: list[list[object]] = [
        [n, text, None if n % 3 else dt.datetime(2026, 1, n + 1, 8, 30, tzinfo=dt.UTC), 2.5 * n]
        for n, text in enumerate(texts)
    ]
    rows.append([99, None, dt.datetime(1900, 2, 28, 12, 0, tzinfo=CHINA), None])

    ours = io.BytesIO()
    writer = XlsxWriter(ours, "s", columns)
    writer.write(rows[:5])  # type: ignore[arg-type]
    writer.write(rows[5:])  # type: ignore[arg-type]
    writer.close()

    theirs = io.BytesIO()
    book = xlsxwriter.Workbook(
        theirs,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "default_date_format": EXCEL_TIME_FORMAT,
        },
    )
    sheet = book.add_worksheet("s")
    time = book.add_format({"num_format": EXCEL_TIME_FORMAT})
    bold = book.add_format({"bold": True})
    for index, column in enumerate(columns):
        sheet.set_column(index, index, column.width)
        sheet.write_string(0, index, column.header, bold)
    sheet.freeze_panes(1, 0)
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS.sub("", value)
                if value:
                    sheet.write_string(number, column, value)
            elif isinstance(value, dt.datetime):
                local = value.astimezone(CHINA).replace(tzinfo=None)
                sheet.write_datetime(number, column, local, time)
            elif isinstance(value, int | float):
                sheet.write_number(number, column, value)
    book.close()

    with zipfile.ZipFile(ours) as mine, zipfile.ZipFile(theirs) as stock:
        assert mine.namelist() == stock.namelist()
        for name in stock.namelist():
            if name != "docProps/core.xml":  # holds the time the file was made
                assert mine.read(name) == stock.read(name), name
        sheet_xml = mine.read("xl/worksheets/sheet1.xml").decode()
    assert "A&amp;B &lt;公司&gt;" in sheet_xml and "含控制字符" in sheet_xml
    assert "回车_x000D_结束" in sheet_xml
    assert "_x005F_x0041_" in sheet_xml and '<t xml:space="preserve"> 前后有空格 </t>' in sheet_xml
    # XlsxWriter would write a text shaped like its rich-string XML into the sheet as is:
    # an enterprise's text never becomes markup here.
    rich = io.BytesIO()
    writer = XlsxWriter(rich, "s", columns)
    writer.write([[1, "<r><t>看似富文本</t></r>", None, None]])
    writer.close()
    with zipfile.ZipFile(rich) as mine:
        sheet_xml = mine.read("xl/worksheets/sheet1.xml").decode()
    assert "&lt;r&gt;&lt;t&gt;看似富文本&lt;/t&gt;&lt;/r&gt;" in sheet_xml
