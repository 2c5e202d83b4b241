"""A Word file sent for 补正 is taken only within the caps on its zip (declared and inflated
sizes, entries, ratio, central directory), checked in a worker thread; refused at the first cap
with a polite line, the chat still at the upload step and nothing stored."""

from __future__ import annotations

import io
import struct
import threading
import zipfile

import pytest
from docx import Document as Docx
from sqlalchemy import select

from bot.app import App
from services import uploads
from services.uploads import UploadCaps, UploadChecker
from storage.models import CaseFile, StoredFile
from support import Chat, waiting_for_supplement

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TYPES = (
    b'<?xml version="1.0"?><Types><Override PartName="/word/document.xml" ContentType='
    b'"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DAMAGED = "已损坏，或解压后的内容过大"


def word_zip(*extra: tuple[str, bytes], types: bytes = TYPES, comment: bytes = b"") -> bytes:
    """A minimal Word file (what the checks look at), with extra entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("word/document.xml", b"<w:document/>")
        for name, content in extra:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.comment = comment
            archive.writestr(info, content)
    return buffer.getvalue()


def declaring(content: bytes, name: str, size: int) -> bytes:
    """The zip with `name` declaring `size` inflated bytes in its local and central headers."""
    data = bytearray(content)
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(name)] == name.encode():
                struct.pack_into("<L", data, at + size_at, size)
            at = data.find(signature, at + 1)
    return bytes(data)


def real_docx() -> bytes:
    buffer = io.BytesIO()
    document = Docx()
    document.add_paragraph("规划许可证 " * 2000)
    document.save(buffer)
    return buffer.getvalue()


async def stored(app: App) -> list[str]:
    async with app.services.db.sessions() as session:
        query = select(CaseFile.name).where(CaseFile.kind == "supplement")
        return list((await session.scalars(query)).all())


@pytest.fixture
async def waiting(app: App, chat: Chat) -> Chat:
    await waiting_for_supplement(app, chat)
    return chat


async def test_a_real_word_file_is_kept_under_its_true_type(app: App, waiting: Chat) -> None:
    await waiting.upload("规划许可证.docx", real_docx(), "text/html")  # the claimed type lies
    assert "已收到“规划许可证.docx”" in waiting.text
    async with app.services.db.sessions() as session:
        (kept,) = (await session.scalars(select(StoredFile))).all()
    assert kept.mime == DOCX_MIME  # what the bytes are, not what the sender said


BOMBS = {
    "inflates over the total cap": word_zip(("word/media/a.bin", bytes(3 * 1024 * 1024))),
    "inflates 1000 times its size": word_zip(("word/media/a.bin", bytes(1024 * 1024))),
    "more entries than the cap": word_zip(*((f"word/p{i}.xml", b"<p/>") for i in range(1001))),
    "an entry lies about its size": declaring(
        word_zip(("word/media/a.bin", b"0123456789" * 50_000)), "word/media/a.bin", 1000
    ),
    "Word's own part lies about its size": declaring(word_zip(), "word/document.xml", 5),
    "a central directory too large to parse": word_zip(
        *((f"word/p{i}.xml", b"<p/>") for i in range(40)), comment=b"c" * 60_000
    ),
    "the Word type named too late": word_zip(types=b" " * 70_000 + TYPES),
    "no Word type named": word_zip(types=TYPES.replace(b"wordprocessingml", b"spreadsheetml")),
}


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.parametrize("case", BOMBS)
async def test_a_word_file_over_a_cap_is_refused_and_the_step_stays(
    app: App, waiting: Chat, case: str
) -> None:
    app.services.uploads = UploadChecker(UploadCaps(office_max_unpacked_bytes=2 * 1024 * 1024))
    await waiting.upload("规划许可证.docx", BOMBS[case], DOCX_MIME)
    assert "“规划许可证.docx”未接收" in waiting.text and DAMAGED in waiting.text, waiting.text
    assert "上传完成" in [b.label for b in waiting.buttons]
    assert await app.router.expects_file(waiting.user)
    assert await stored(app) == []


async def test_an_end_record_declaring_a_zip64_count_is_refused_before_parsing(
    app: App, waiting: Chat
) -> None:
    content = bytearray(word_zip())
    end = content.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", content, end + 8, 0xFFFF, 0xFFFF)
    await waiting.upload("规划许可证.docx", bytes(content), DOCX_MIME)
    assert DAMAGED in waiting.text
    assert await stored(app) == []


async def test_the_check_runs_in_a_worker_thread(
    app: App, waiting: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = uploads.check_word

    def recorded(*args: object) -> None:
        threads.append(threading.current_thread())
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(uploads, "check_word", recorded)
    await waiting.upload("规划许可证.docx", real_docx(), DOCX_MIME)
    assert "已收到" in waiting.text
    assert threads and threads[0] is not threading.main_thread()


async def test_a_file_over_the_size_cap_is_refused_with_the_limit(app: App, waiting: Chat) -> None:
    app.services.uploads = UploadChecker(UploadCaps(max_bytes=1024 * 1024))
    await waiting.upload("扫描件.pdf", b"%PDF-1.4\n" + bytes(1024 * 1024), "application/pdf")
    assert "“扫描件.pdf”未接收" in waiting.text and "超过 1 MB" in waiting.text
    assert await app.router.expects_file(waiting.user)
    await waiting.upload("扫描件.pdf", b"%PDF-1.4\n", "application/pdf")
    assert "已收到“扫描件.pdf”" in waiting.text
