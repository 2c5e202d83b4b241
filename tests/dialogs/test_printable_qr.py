"""The printed form carries the 查询码 and a QR code opening the case's status.

The codes are read back with a real scanner (zbarimg) from the printed page, so a wrong
address, a missing image or an unreadable code fails, whatever the QR library does."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import docx
from test_printable import FORM, pdf_text

from conftest import require_tool
from dialogs.printable import render_docx, render_pdf
from services.documents import status_url
from support import scan

URL = status_url("https://bdb.example.gov.cn/chat/", "BDB-2026-000123")


def test_status_url_opens_the_lookup_on_the_case() -> None:
    assert URL == "https://bdb.example.gov.cn/chat/?case=BDB-2026-000123"
    assert status_url("", "BDB-2026-000123") is None


def test_docx_prints_the_query_code_and_the_status_qr_code(tmp_path: Path) -> None:
    assert URL is not None
    content = render_docx(replace(FORM, query_code="ABC234", status_url=URL))
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    assert "查询码：ABC234" in text
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        media = [n for n in archive.namelist() if n.startswith("word/media/")]
        assert len(media) == 1
        image = tmp_path / Path(media[0]).name
        image.write_bytes(archive.read(media[0]))
    assert scan(image) == [URL]


def test_form_without_a_code_has_no_qr_and_no_empty_label() -> None:
    content = render_docx(FORM)
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    assert "查询码" not in text
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert not [n for n in archive.namelist() if n.startswith("word/media/")]


def pdf_page(pdf: bytes, tmp_path: Path) -> Path:
    """The first page of the PDF as an image, printed at 150 dpi."""
    pdftoppm = require_tool("pdftoppm", "poppler-utils")
    source = tmp_path / "form.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", "150", "-f", "1", "-l", "1", "-singlefile", str(source),
         str(tmp_path / "page")],
        check=True,
    )  # fmt: skip
    return tmp_path / "page.png"


def test_pdf_prints_the_query_code_and_the_status_qr_code(cjk_font: Path, tmp_path: Path) -> None:
    pdf = render_pdf(replace(FORM, query_code="ABC234", status_url=URL), cjk_font)
    assert "查询码：ABC234" in re.sub(r"\s+", "", pdf_text(pdf, tmp_path))
    assert scan(pdf_page(pdf, tmp_path)) == [URL]


def test_pdf_without_a_code_prints_no_qr_code(cjk_font: Path, tmp_path: Path) -> None:
    assert scan(pdf_page(render_pdf(FORM, cjk_font), tmp_path)) == []


RATE = "https://bdb.example.gov.cn/chat/rate/AbCdEfGhIjKlMnOpQrStUvWx"


def test_a_delivered_case_prints_its_rating_link_beside_the_status(
    cjk_font: Path, tmp_path: Path
) -> None:
    form = replace(FORM, query_code="ABC234", status_url=URL, rating_url=RATE)
    pdf = render_pdf(form, cjk_font)
    assert "扫码评价本次服务" in re.sub(r"\s+", "", pdf_text(pdf, tmp_path))
    assert sorted(scan(pdf_page(pdf, tmp_path))) == sorted([URL, RATE])
    content = render_docx(form)
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(content)).paragraphs)
    assert "扫码评价本次服务（好差评，限用一次）：" in text
