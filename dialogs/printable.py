"""The printable application form (附件2) as DOCX and PDF, to be stamped and uploaded back."""

from __future__ import annotations

import datetime
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:  # docxtpl, fpdf and fontTools are imported when a form is rendered
    from fontTools.ttLib import TTFont
    from fpdf import FPDF

TEMPLATE = Path(__file__).resolve().parent / "forms" / "application.docx"


@dataclass(frozen=True)
class ApplicationPrint:
    """What the enterprise filled in, as printed on the form."""

    number: str
    company: str
    credit_code: str | None
    project_name: str
    project_code: str | None
    contact_name: str
    contact_phone: str
    project_summary: str
    requested_items: tuple[str, ...]
    submitted_on: datetime.date
    query_code: str | None = None  # 查询码, printed so the paper proves the case is theirs
    status_url: str | None = None  # printed as a QR code opening the case's status
    rating_url: str | None = None  # a delivered case's one-time 好差评 link, printed as a QR code


@dataclass(frozen=True)
class FormText:
    """The printed words of the form; make_template.py writes the same words into the DOCX."""

    title: str = "湖南湘江新区“帮代办”服务申请表"
    number: str = "申请编号："
    company: str = "建设单位（加盖公章）："
    credit_code: str = "统一社会信用代码："
    date: str = "{year}年{month}月{day}日"
    project_name: str = "项目名称"
    project_code: str = "投资项目统一代码："
    contact_name: str = "联系人"
    contact_phone: str = "联系电话"
    project_summary: str = "项目简介"
    requested_items: str = "申请事项"
    handler_opinion: str = "经办人意见"
    leader_instruction: str = "领导批示"
    query_code: str = "查询码："
    scan_hint: str = "（扫码查看办理进度）"
    rate_hint: str = "扫码评价本次服务（好差评，限用一次）："
    rate_caption: str = "扫码评价本次服务"
    file_stem: str = "帮代办服务申请表"
    creator: str = "帮代办助手"


TEXT = FormText()

# XML 1.0 forbids most C0 controls; docxtpl turns \a and \f into paragraphs and page breaks.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n{3,}")
_UNSAFE_FILE_CHARS = re.compile(r"[^0-9A-Za-z._-]+")


def file_name(form: ApplicationPrint, ext: str) -> str:
    """The download name, e.g. 帮代办服务申请表-BDB-2026-000123.docx."""
    number = _UNSAFE_FILE_CHARS.sub("_", form.number).strip("._") or "draft"
    return f"{TEXT.file_stem}-{number}.{ext.lstrip('.')}"


def _clean(value: str | None, *, multiline: bool = False) -> str:
    """User text with controls removed; line breaks kept only where the form has room for them."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = _CONTROL.sub("", text)
    if multiline:
        return _BLANK_LINES.sub("\n\n", text).strip()
    return " ".join(text.split())


def _date(day: datetime.date) -> str:
    return TEXT.date.format(year=day.year, month=day.month, day=day.day)


# ---------------------------------------------------------------- DOCX


@cache
def _template_bytes() -> bytes:
    return TEMPLATE.read_bytes()


def _xml(value: str) -> Markup:
    """Escaped text for the template; underscores as character references because docxtpl
    rewrites "{_{" and "%_}" in its output, which would alter such user text."""
    return Markup(str(escape(value)).replace("_", "&#95;"))


def _docx_context(form: ApplicationPrint) -> dict[str, object]:
    return {
        "number": _xml(_clean(form.number)),
        "company": _xml(_clean(form.company)),
        "credit_code": _xml(_clean(form.credit_code)),
        "project_name": _xml(_clean(form.project_name)),
        "project_code": _xml(_clean(form.project_code)),
        "contact_name": _xml(_clean(form.contact_name)),
        "contact_phone": _xml(_clean(form.contact_phone)),
        "project_summary": _xml(_clean(form.project_summary, multiline=True)),
        "requested_items": [_xml(_clean(item)) for item in form.requested_items],
        "date": _xml(_date(form.submitted_on)),
        "query_code": _xml(_clean(form.query_code)),
    }


def qr_png(url: str) -> bytes:
    """A QR code of the address as PNG."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=8, border=2)
    return out.getvalue()


def render_docx(form: ApplicationPrint) -> bytes:
    """The filled-in form as a Word document; staff-only rows stay blank."""
    from docx.shared import Mm
    from docxtpl import DocxTemplate, InlineImage

    template = DocxTemplate(io.BytesIO(_template_bytes()))
    context = _docx_context(form)
    context["qr"] = ""
    if form.status_url:
        context["qr"] = InlineImage(template, io.BytesIO(qr_png(form.status_url)), width=Mm(20))
    context["rate_qr"] = ""
    if form.rating_url:
        picture = io.BytesIO(qr_png(form.rating_url))
        context["rate_qr"] = InlineImage(template, picture, width=Mm(20))
    template.render(context, autoescape=True)
    out = io.BytesIO()
    template.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- fonts

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


def find_cjk_font(explicit: str | Path | None = None) -> Path | None:
    """A font file able to print the form: the explicit one, a known location, or fontconfig's."""
    if explicit and Path(explicit).is_file():
        return Path(explicit)
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    for found in _fontconfig_fonts():
        if _covers(found, TEXT.title):
            return found
    return None


def _fontconfig_fonts() -> list[Path]:
    commands = (
        ["fc-match", "-f", "%{file}", ":lang=zh"],
        ["fc-list", "-f", "%{file}\n", ":lang=zh"],
    )
    found: list[Path] = []
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        found += [Path(line) for line in result.stdout.splitlines() if line.strip()]
    return [path for path in dict.fromkeys(found) if path.is_file()]


def _faces(font: Path) -> list[TTFont]:
    from fontTools.ttLib import TTCollection, TTFont

    if font.suffix.lower() in {".ttc", ".otc"}:
        return list(TTCollection(str(font), lazy=True).fonts)
    return [TTFont(str(font), lazy=True)]


def _covers(font: Path, text: str) -> bool:
    """Whether the font has a glyph for every character of the text."""
    from fontTools.ttLib import TTLibError

    try:
        cmap = _faces(font)[0].getBestCmap() or {}
    except (OSError, TTLibError, KeyError, AssertionError):
        return False
    return all(ord(char) in cmap for char in text if not char.isspace())


@cache
def _face_index(font: Path) -> int:
    """Which face of a font collection to use: Simplified Chinese if named, else the first."""
    from fontTools.ttLib import TTLibError

    try:
        faces = _faces(font)
    except (OSError, TTLibError):
        return 0
    for index, face in enumerate(faces):
        name = str(face["name"].getDebugName(4) or "")
        if name.endswith((" SC", " SC Regular")) or " SC " in name:
            return index
    return 0


# ---------------------------------------------------------------- PDF

_FAMILY = "cjk"
_WIDTHS = (30.0, 50.0, 30.0, 50.0)  # mm; label, value, label, value = 160 mm text width
_LINE = 1.55  # line height as a multiple of the font size
_SIZES = (12.0, 10.5, 9.0, 7.5)
# (font size, height of each staff-only row) from roomiest to tightest, all still writable.
_LAYOUTS = ((12.0, 32.0), (10.5, 32.0), (10.5, 24.0), (9.0, 24.0), (9.0, 20.0), (7.5, 20.0))
_PADDING = (2.0, 2.5)  # mm; vertical, horizontal
_SUMMARY_WIDTH = sum(_WIDTHS[1:]) - 2 * _PADDING[1]
_MARGINS = (25.0, 18.0)  # mm; left and right, top and bottom
_QR_MM = 16.0  # a printed QR code's side
_PAGE_ROOM = 297 - 2 * _MARGINS[1] - 2 * _PADDING[0] - 2  # tallest row a page holds, mm


def _pt(size: float) -> float:
    return size * 25.4 / 72


def render_pdf(form: ApplicationPrint, font: Path) -> bytes:
    """The filled-in form as an A4 PDF with the CJK font embedded."""
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(left=_MARGINS[0], top=_MARGINS[1], right=_MARGINS[0])
    pdf.set_auto_page_break(auto=True, margin=_MARGINS[1])
    pdf.add_font(_FAMILY, "", font, collection_font_number=_face_index(font))
    pdf.set_title(TEXT.title)
    pdf.set_creator(TEXT.creator)
    pdf.add_page()
    _pdf_heading(pdf, form)
    _pdf_table(pdf, form)
    return bytes(pdf.output())


def _pdf_heading(pdf: FPDF, form: ApplicationPrint) -> None:
    from fpdf.enums import Align, WrapMode

    pdf.set_font(_FAMILY, size=9)
    heading = TEXT.number + _clean(form.number)
    if form.query_code:
        heading += "  " + TEXT.query_code + _clean(form.query_code)
    if form.status_url:  # top left, beside the title; the text flow does not move
        pdf.image(io.BytesIO(qr_png(form.status_url)), x=_MARGINS[0], y=_MARGINS[1], w=16)
    if form.rating_url:  # top right under the number, clear of the title, captioned
        x, y = pdf.w - _MARGINS[1] - _QR_MM, _MARGINS[1] + 6
        pdf.image(io.BytesIO(qr_png(form.rating_url)), x=x, y=y, w=_QR_MM)
        pdf.set_font(_FAMILY, size=6)
        pdf.set_xy(x - 2, y + _QR_MM)
        pdf.cell(_QR_MM + 4, 3, TEXT.rate_caption, align=Align.C)
        pdf.set_xy(_MARGINS[0], _MARGINS[1])
        pdf.set_font(_FAMILY, size=9)
    pdf.cell(0, 5, heading, align=Align.R, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(_FAMILY, size=22)
    pdf.multi_cell(0, 12, TEXT.title, align=Align.C, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(_FAMILY, size=14)
    company = TEXT.company + _clean(form.company)
    pdf.multi_cell(0, 8, company, align=Align.L, wrapmode=WrapMode.CHAR, new_x="LMARGIN")
    credit_code = _clean(form.credit_code)
    if credit_code:
        pdf.set_font(_FAMILY, size=12)
        pdf.multi_cell(0, 7, TEXT.credit_code + credit_code, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(14)  # room for the seal
    pdf.set_font(_FAMILY, size=14)
    pdf.cell(150, 8, _date(form.submitted_on), align=Align.R, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


@dataclass(frozen=True)
class _Cell:
    text: str
    span: int = 1
    label: bool = False
    top: bool = False


@dataclass(frozen=True)
class _Row:
    cells: tuple[_Cell, ...]
    min_height: float


def _rows(form: ApplicationPrint, summary: str, staff_height: float) -> list[_Row]:
    project = _clean(form.project_name)
    if project_code := _clean(form.project_code):
        project += f"\n{TEXT.project_code}{project_code}"
    items = "\n".join(
        f"{number}. {_clean(item)}" for number, item in enumerate(form.requested_items, start=1)
    )
    return [
        _Row((_Cell(TEXT.project_name, label=True), _Cell(project, span=3)), 14),
        _Row(
            (
                _Cell(TEXT.contact_name, label=True),
                _Cell(_clean(form.contact_name)),
                _Cell(TEXT.contact_phone, label=True),
                _Cell(_clean(form.contact_phone)),
            ),
            14,
        ),
        _Row((_Cell(TEXT.project_summary, label=True), _Cell(summary, span=3, top=True)), 40),
        _Row((_Cell(TEXT.requested_items, label=True), _Cell(items, span=3, top=True)), 24),
        # Staff fill these on paper: never any text.
        _Row((_Cell(TEXT.handler_opinion, label=True), _Cell("", span=3)), staff_height),
        _Row((_Cell(TEXT.leader_instruction, label=True), _Cell("", span=3)), staff_height),
    ]


def _pdf_table(pdf: FPDF, form: ApplicationPrint) -> None:
    """The table at the roomiest layout that keeps the form on one page."""
    summary = _clean(form.project_summary, multiline=True)
    room = pdf.page_break_trigger - pdf.y
    for size, staff_height in _LAYOUTS:
        rows = _rows(form, summary, staff_height)
        if _table_height(pdf, rows, size) <= room:
            break
    else:
        summary, size = _fit_summary(pdf, summary)
        rows = _rows(form, summary, _LAYOUTS[0][1])
    _draw_table(pdf, rows, size)


def _draw_table(pdf: FPDF, rows: list[_Row], size: float) -> None:
    from fpdf.enums import Align, VAlign, WrapMode

    pdf.set_font(_FAMILY, size=size)  # one size for the whole table keeps it looking even
    with pdf.table(
        col_widths=_WIDTHS,
        first_row_as_headings=False,
        text_align=Align.L,
        v_align=VAlign.M,
        wrapmode=WrapMode.CHAR,
        line_height=_pt(size) * _LINE,
        padding=_PADDING,
    ) as table:
        for row in rows:
            drawn = table.row(min_height=row.min_height)
            for cell in row.cells:
                drawn.cell(
                    cell.text,
                    colspan=cell.span,
                    align=Align.C if cell.label else None,
                    v_align=VAlign.T if cell.top else None,
                )


def _table_height(pdf: FPDF, rows: list[_Row], size: float) -> float:
    """What _draw_table will take, measured without drawing (plus a little slack)."""
    total = 0.0
    for row in rows:
        column = 0
        height = row.min_height
        for cell in row.cells:
            width = sum(_WIDTHS[column : column + cell.span]) - 2 * _PADDING[1]
            column += cell.span
            height = max(height, _text_height(pdf, cell.text, width, size) + 2 * _PADDING[0])
        total += height
    return total + 2


def _text_height(pdf: FPDF, text: str, width: float, size: float) -> float:
    from fpdf.enums import WrapMode

    pdf.set_font(_FAMILY, size=size)
    lines = pdf.multi_cell(
        width, _pt(size) * _LINE, text, wrapmode=WrapMode.CHAR, dry_run=True, output="LINES"
    )
    assert isinstance(lines, list)
    return len(lines) * _pt(size) * _LINE


def _fit_summary(pdf: FPDF, summary: str) -> tuple[str, float]:
    """The summary and the largest font size at which its row fits on one page (fpdf2 cannot
    split a table row); line breaks go first, then, past any sane length, the tail."""
    for text in (summary, " ".join(summary.split())):
        for size in _SIZES:
            if _text_height(pdf, text, _SUMMARY_WIDTH, size) <= _PAGE_ROOM:
                return text, size
    size = _SIZES[-1]
    while _text_height(pdf, text, _SUMMARY_WIDTH, size) > _PAGE_ROOM:
        text = text[: len(text) * 9 // 10] + "…"
    return text, size
