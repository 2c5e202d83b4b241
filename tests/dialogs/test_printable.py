import datetime
import io
import re
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import docx
import pytest

from conftest import require_tool
from dialogs import printable
from dialogs.printable import ApplicationPrint, file_name, find_cjk_font, render_docx, render_pdf

HOSTILE = "<script>&{{ x }}{% if %}"

FORM = ApplicationPrint(
    number="BDB-2026-000123",
    company="长沙智造科技有限公司",
    credit_code="91430100MA4L16JR2K",
    project_name="湘江智造产业园一期",
    project_code="2601-430100-04-01-123456",
    contact_name="张三",
    contact_phone="13800000000",
    project_summary="新建厂房及配套设施，总建筑面积约五万平方米。",
    requested_items=("建设工程规划许可证", "建筑工程施工许可证", "竣工联合验收"),
    submitted_on=datetime.date(2026, 11, 28),
)


def document_of(form: ApplicationPrint) -> docx.document.Document:
    return docx.Document(io.BytesIO(render_docx(form)))


def text_of(document: docx.document.Document) -> str:
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts += [cell.text for cell in row.cells]
    return "\n".join(parts)


def row_of(document: docx.document.Document, label: str) -> list[str]:
    for row in document.tables[0].rows:
        if row.cells[0].text == label:
            return [cell.text for cell in row.cells]
    raise AssertionError(f"no row {label}")


def test_docx_shows_everything_the_enterprise_filled_in() -> None:
    text = text_of(document_of(FORM))

    for expected in (
        "湖南湘江新区“帮代办”服务申请表",
        "建设单位（加盖公章）：长沙智造科技有限公司",
        "统一社会信用代码：91430100MA4L16JR2K",
        "湘江智造产业园一期",
        "投资项目统一代码：2601-430100-04-01-123456",
        "申请编号：BDB-2026-000123",
        "2026年11月28日",
        "新建厂房及配套设施",
        "1. 建设工程规划许可证",
        "2. 建筑工程施工许可证",
        "3. 竣工联合验收",
    ):
        assert expected in text


def test_contact_and_phone_share_one_row_as_in_the_original() -> None:
    assert row_of(document_of(FORM), "联系人") == ["联系人", "张三", "联系电话", "13800000000"]


def test_staff_only_rows_are_blank() -> None:
    document = document_of(FORM)

    for label in ("经办人意见", "领导批示"):
        label_cell, *value_cells = row_of(document, label)
        assert label_cell == label
        assert all(value.strip() == "" for value in value_cells)


def test_missing_codes_leave_no_empty_labels() -> None:
    text = text_of(document_of(replace(FORM, credit_code=None, project_code=None)))

    assert "统一社会信用代码" not in text
    assert "投资项目统一代码" not in text
    assert "湘江智造产业园一期" in text


def test_template_syntax_and_markup_in_values_appear_literally() -> None:
    form = replace(
        FORM,
        company=f"{HOSTILE} {{_{{ a_b }}_}}",
        project_name=HOSTILE,
        contact_name="{{ company }}",
        project_summary=f"{HOSTILE}\n{{% for x in y %}}",
        requested_items=(HOSTILE, "{%p endfor %}"),
    )

    document = document_of(form)
    text = text_of(document)

    assert f"建设单位（加盖公章）：{HOSTILE} {{_{{ a_b }}_}}" in text
    assert row_of(document, "项目名称")[1].startswith(HOSTILE)
    assert row_of(document, "联系人")[1] == "{{ company }}"
    assert f"{HOSTILE}\n{{% for x in y %}}" in text
    assert f"1. {HOSTILE}" in text
    assert "2. {%p endfor %}" in text


def test_control_characters_do_not_corrupt_the_document() -> None:
    form = replace(FORM, company="长沙\x00智造\x0b科技\x07", project_summary="第一段\r\n\f第二段")

    text = text_of(document_of(form))

    assert "长沙智造科技" in text
    assert "第一段\n第二段" in text


def test_long_summary_is_present_in_full() -> None:
    summary = ("湘江新区智能制造项目建设内容包括厂房、仓储与研发中心。" * 40)[:1000]

    text = text_of(document_of(replace(FORM, project_summary=summary)))

    assert summary in text


def test_rendering_is_pure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert zipfile.is_zipfile(io.BytesIO(render_docx(FORM)))
    assert list(tmp_path.iterdir()) == []


def test_file_name_carries_the_case_number() -> None:
    assert file_name(FORM, "docx") == "帮代办服务申请表-BDB-2026-000123.docx"
    assert file_name(FORM, ".pdf") == "帮代办服务申请表-BDB-2026-000123.pdf"
    assert "/" not in file_name(replace(FORM, number="../x/y"), "pdf")


def test_explicit_font_path_wins(tmp_path: Path) -> None:
    font = tmp_path / "custom.ttf"
    font.write_bytes(b"")

    assert find_cjk_font(font) == font
    assert find_cjk_font(str(font)) == font


def test_missing_explicit_font_falls_back_to_the_system() -> None:
    assert find_cjk_font("/nonexistent/font.ttf") == find_cjk_font()


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """Text of the PDF via poppler's pdftotext (missing: fails in CI, skips elsewhere)."""
    pdftotext = require_tool("pdftotext", "poppler-utils")
    source = tmp_path / "form.pdf"
    source.write_bytes(pdf)
    result = subprocess.run(
        [pdftotext, "-raw", str(source), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout


def assert_valid_pdf(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert re.search(rb"/FontFile[23]?\b", pdf), "the CJK font must be embedded"
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf  # A4


def test_pdf_is_an_a4_form_with_the_font_embedded(cjk_font: Path, tmp_path: Path) -> None:
    pdf = render_pdf(FORM, cjk_font)

    assert_valid_pdf(pdf)
    flat = re.sub(r"\s+", "", pdf_text(pdf, tmp_path))
    for expected in (
        "湖南湘江新区“帮代办”服务申请表",
        "长沙智造科技有限公司",
        "2026年11月28日",
        "经办人意见",
        "领导批示",
        "BDB-2026-000123",
    ):
        assert expected in flat


def test_pdf_keeps_hostile_values_and_a_long_summary(cjk_font: Path, tmp_path: Path) -> None:
    summary = ("湘江新区智能制造项目建设内容包括厂房、仓储与研发中心。" * 40)[:1000]
    form = replace(FORM, company=HOSTILE, project_summary=summary)

    pdf = render_pdf(form, cjk_font)

    assert_valid_pdf(pdf)
    flat = re.sub(r"\s+", "", pdf_text(pdf, tmp_path))
    assert re.sub(r"\s+", "", HOSTILE) in flat
    assert summary in flat


def test_pdf_survives_a_summary_of_only_line_breaks(cjk_font: Path) -> None:
    form = replace(FORM, project_summary="\n".join("行" * 500))

    assert_valid_pdf(render_pdf(form, cjk_font))


def test_fontconfig_fallback_offers_only_fonts_with_chinese_glyphs(
    cjk_font: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_tool("fc-list", "fontconfig")
    monkeypatch.setattr(printable, "_FONT_CANDIDATES", ())  # only fontconfig is asked

    font = find_cjk_font()  # a CJK font is installed (cjk_font), so fontconfig finds one

    assert font is not None
    assert "湖南湘江新区" in pdf_text(render_pdf(FORM, font), tmp_path)
