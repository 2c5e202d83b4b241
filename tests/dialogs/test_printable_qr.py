"""The printed form carries the 查询码 and a QR code opening the case's status."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import docx
from test_printable import FORM, pdf_text

from dialogs.printable import qr_png, render_docx, render_pdf
from services.documents import status_url

URL = status_url("https://bdb.example.gov.cn/chat/", "BDB-2026-000123")


def test_status_url_opens_the_lookup_on_the_case() -> None:
    assert URL == "https://bdb.example.gov.cn/chat/?case=BDB-2026-000123"
    assert status_url("", "BDB-2026-000123") is None


def test_docx_prints_the_query_code_and_the_status_qr_code() -> None:
    assert URL is not None
    content = render_docx(replace(FORM, query_code="ABC234", status_url=URL))
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    assert "查询码：ABC234" in text
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        media = [archive.read(n) for n in archive.namelist() if n.startswith("word/media/")]
    assert media == [qr_png(URL)]  # segno is deterministic: the same address, the same image


def test_form_without_a_code_has_no_qr_and_no_empty_label() -> None:
    content = render_docx(FORM)
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    assert "查询码" not in text
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert not [n for n in archive.namelist() if n.startswith("word/media/")]


def test_pdf_prints_the_query_code_and_an_image(cjk_font: Path, tmp_path: Path) -> None:
    pdf = render_pdf(replace(FORM, query_code="ABC234", status_url=URL), cjk_font)
    assert b"/Subtype /Image" in pdf
    text = pdf_text(pdf, tmp_path)
    if text is not None:
        assert "查询码：ABC234" in re.sub(r"\s+", "", text)
