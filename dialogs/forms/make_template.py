"""Build application.docx, the docxtpl template of 附件2.

Run `python -m dialogs.forms.make_template` after changing the layout or the words in TEXT.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

from docx import Document
from docx.document import Document as DocumentObject
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_ROW_HEIGHT_RULE, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Cm, Pt
from docx.styles.style import CharacterStyle
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from docx.text.run import Run
from lxml import etree

from dialogs.printable import TEMPLATE, TEXT

BODY_FONT = "宋体"
LATIN_FONT = "Times New Roman"
TITLE_FONT = "方正小标宋简体"
TITLE_FALLBACK = "黑体"
# Column widths: label, value, label, value — 16 cm of A4 text width, as in 附件2.
WIDTHS = (Cm(3.0), Cm(5.0), Cm(3.0), Cm(5.0))

# Word and LibreOffice fall back to altName when the font is missing; charset 86 is GB2312.
FONT_TABLE_ENTRIES = (
    (TITLE_FONT, TITLE_FALLBACK, "02010601030101010101", "roman"),
    (TITLE_FALLBACK, "SimHei", "02010609060101010101", "modern"),
    (BODY_FONT, "SimSun", "02010600030101010101", "auto"),
)


def set_fonts(element: Run | CharacterStyle, east_asia: str, size: float | None = None) -> None:
    """Set the Latin and East-Asian fonts (and size) of a run or style."""
    element.font.name = LATIN_FONT
    if size is not None:
        element.font.size = Pt(size)
    fonts = element.element.get_or_add_rPr().get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), east_asia)
    fonts.set(qn("w:hint"), "eastAsia")


def paragraph(
    container: DocumentObject | _Cell,
    text: str,
    *,
    size: float = 12,
    align: WD_ALIGN_PARAGRAPH = WD_ALIGN_PARAGRAPH.LEFT,
    east_asia: str = BODY_FONT,
    before: float = 0,
    after: float = 0,
) -> Paragraph:
    """Add one paragraph with a single run, so docxtpl sees each tag unbroken."""
    par = container.add_paragraph()
    par.alignment = align
    par.paragraph_format.space_before = Pt(before)
    par.paragraph_format.space_after = Pt(after)
    set_fonts(par.add_run(text), east_asia, size)
    return par


def optional(
    container: DocumentObject | _Cell, condition: str, text: str, *, size: float = 12
) -> None:
    """A paragraph that docxtpl keeps only when the context value is non-empty."""
    paragraph(container, f"{{%p if {condition} %}}", size=size)
    paragraph(container, text, size=size)
    paragraph(container, "{%p endif %}", size=size)


def first_paragraph(cell: _Cell, text: str, *, size: float = 12, center: bool = False) -> None:
    par = cell.paragraphs[0]
    par.alignment = WD_ALIGN_PARAGRAPH.CENTER if center else WD_ALIGN_PARAGRAPH.LEFT
    set_fonts(par.add_run(text), BODY_FONT, size)


def label_row(table: Table, label: str, height: float, *, top: bool = False) -> _Cell:
    """A row with a label cell and one value cell spanning the other three columns."""
    row = table.add_row()
    row.height = Cm(height)
    row.height_rule = WD_ROW_HEIGHT_RULE.AT_LEAST
    cells = row.cells
    first_paragraph(cells[0], label, center=True)
    cells[0].vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
    value = cells[1].merge(cells[3])
    value.vertical_alignment = (
        WD_CELL_VERTICAL_ALIGNMENT.TOP if top else WD_CELL_VERTICAL_ALIGNMENT.CENTER
    )
    return value


def contact_row(table: Table) -> None:
    """联系人 and 联系电话 side by side, as in 附件2."""
    row = table.add_row()
    row.height = Cm(1.2)
    row.height_rule = WD_ROW_HEIGHT_RULE.AT_LEAST
    texts = (TEXT.contact_name, "{{ contact_name }}", TEXT.contact_phone, "{{ contact_phone }}")
    for index, (cell, text) in enumerate(zip(row.cells, texts, strict=True)):
        first_paragraph(cell, text, center=index % 2 == 0)
        cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER


def build_table(document: DocumentObject) -> None:
    table = document.add_table(rows=0, cols=4)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for column, width in zip(table.columns, WIDTHS, strict=True):
        column.width = width

    project = label_row(table, TEXT.project_name, 1.2)
    first_paragraph(project, "{{ project_name }}")
    optional(project, "project_code", f"{TEXT.project_code}{{{{ project_code }}}}", size=10.5)

    contact_row(table)

    summary = label_row(table, TEXT.project_summary, 4.5, top=True)
    first_paragraph(summary, "{{ project_summary }}")

    items = label_row(table, TEXT.requested_items, 3.5, top=True)
    first_paragraph(items, "{%p for item in requested_items %}")
    paragraph(items, "{{ loop.index }}. {{ item }}")
    paragraph(items, "{%p endfor %}")

    # Staff fill these on paper; they never receive a placeholder.
    label_row(table, TEXT.handler_opinion, 3.5)
    label_row(table, TEXT.leader_instruction, 3.5)

    for row in table.rows:
        for cell, width in zip(row.cells, WIDTHS, strict=True):
            cell.width = width


def add_font_table_entries(document: DocumentObject) -> None:
    part = document.part
    font_table = next(
        rel.target_part for rel in part.rels.values() if rel.reltype.endswith("/fontTable")
    )
    root = parse_xml(font_table.blob)
    for name, alt, panose, family in FONT_TABLE_ENTRIES:
        root.append(
            parse_xml(
                f'<w:font {nsdecls("w")} w:name="{name}"><w:altName w:val="{alt}"/>'
                f'<w:panose1 w:val="{panose}"/><w:charset w:val="86"/>'
                f'<w:family w:val="{family}"/><w:pitch w:val="variable"/></w:font>'
            )
        )
    font_table._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def drop_thumbnail(document: DocumentObject) -> None:
    """python-docx's default template ships a thumbnail of an unrelated page."""
    rels = document.part.package.rels
    for key, rel in list(rels.items()):
        if rel.reltype.endswith("/thumbnail"):
            rels.pop(key)


def build() -> bytes:
    """The template as bytes."""
    document = Document()
    section = document.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(2.2), Cm(2.0)
    section.left_margin, section.right_margin = Cm(2.5), Cm(2.5)
    set_fonts(document.styles["Normal"], BODY_FONT, 12)

    core = document.core_properties
    core.title = TEXT.title
    core.author = TEXT.creator
    core.last_modified_by = TEXT.creator
    core.comments = ""
    core.revision = 1
    core.created = core.modified = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    paragraph(document, f"{TEXT.number}{{{{ number }}}}", size=9, align=WD_ALIGN_PARAGRAPH.RIGHT)
    paragraph(
        document,
        TEXT.title,
        size=22,
        align=WD_ALIGN_PARAGRAPH.CENTER,
        east_asia=TITLE_FONT,
        before=12,
        after=24,
    )
    paragraph(document, f"{TEXT.company}{{{{ company }}}}", size=14, after=4)
    optional(document, "credit_code", f"{TEXT.credit_code}{{{{ credit_code }}}}")
    date = paragraph(document, "{{ date }}", size=14, align=WD_ALIGN_PARAGRAPH.RIGHT, before=42)
    date.paragraph_format.right_indent = Cm(1.0)
    date.paragraph_format.space_after = Pt(12)
    build_table(document)
    paragraph(document, "{%p if query_code %}", size=2)
    paragraph(
        document, f"{TEXT.query_code}{{{{ query_code }}}}{TEXT.scan_hint}{{{{ qr }}}}", size=10.5
    )
    paragraph(document, "{%p endif %}", size=2)
    paragraph(document, "{%p if rate_qr %}", size=2)
    paragraph(document, f"{TEXT.rate_hint}{{{{ rate_qr }}}}", size=10.5)
    paragraph(document, "{%p endif %}", size=2)
    # A document cannot end with a table; keep the trailing paragraph tiny.
    paragraph(document, "", size=2)

    add_font_table_entries(document)
    drop_thumbnail(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def main(target: Path = TEMPLATE) -> None:
    target.write_bytes(build())
    print(target)


if __name__ == "__main__":
    main()
