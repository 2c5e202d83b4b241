"""What an uploaded file really is, found within caps in a worker thread, never on the event loop.

The type comes from the bytes (not the name or the claimed MIME). A Word file is a zip: it is
refused at the first cap it passes — entries or central directory declared too large, declared
inflated sizes or ratios too large, then the same counted while every entry is inflated in
chunks — so a zip bomb costs a bounded moment of one thread and a chunk of memory.
"""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO

import filetype

from chat.events import UploadedFile

log = logging.getLogger(__name__)
MIB = 1024 * 1024
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
SNIFF_BYTES = 8192  # what filetype looks at
CONTENT_TYPES = "[Content_Types].xml"
WORD_PARTS = (CONTENT_TYPES, "word/document.xml")
WORD_MAIN = b"wordprocessingml.document.main+xml"
TYPES_READ = 64 * 1024  # a Word file's [Content_Types].xml is a few KB and names it early
CHUNK = 64 * 1024
# Small entries inflate far beyond the ratio (an XML of spaces); like Apache POI's
# ZipSecureFile, the ratio counts only past this many bytes.
RATIO_GRACE = 100 * 1024
DIRECTORY_BYTES_PER_ENTRY = 1024  # a central-directory record: 46 bytes and a short name
END_RECORD = struct.Struct("<4s4H2LH")  # the zip's end of central directory record
END_SIGNATURE = b"PK\x05\x06"
# What parsing a hostile zip may raise: each means "not a Word file we take".
DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    RuntimeError,  # encrypted entries
    NotImplementedError,  # compression methods zipfile lacks
    ValueError,
    KeyError,
)


class Refusal(StrEnum):
    TOO_LARGE = "too_large"
    TYPE = "type"  # not PDF, JPEG, PNG or Word
    DAMAGED = "damaged"  # a Word file that is broken or over a cap


@dataclass(frozen=True)
class UploadCaps:
    max_bytes: int = 20 * MIB
    office_max_unpacked_bytes: int = 100 * MIB
    office_max_entries: int = 1000
    office_max_ratio: int = 100


@dataclass(frozen=True)
class Checked:
    """The type the content really has (its MIME and extension), or why it is refused."""

    extension: str | None
    refusal: Refusal | None = None
    mime: str = "application/octet-stream"


class OverCap(Exception):
    """A zip is over one of the caps (the message names which)."""


def check(source: BinaryIO, caps: UploadCaps) -> Checked:
    """The accepted type this content really has, or the first reason to refuse it (blocking)."""
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    if size > caps.max_bytes:
        return Checked(None, Refusal.TOO_LARGE)
    kind = filetype.guess(source.read(SNIFF_BYTES))
    mime = kind.mime if kind is not None else ""
    extension = EXTENSIONS.get(mime)
    if extension is None:
        return Checked(None, Refusal.TYPE)
    if extension == ".docx":
        try:
            check_word(source, size, caps)
        except OverCap as over:
            log.info("upload refused: zip over a cap (%s)", over)
            return Checked(None, Refusal.DAMAGED)
        except DAMAGED as exc:
            log.info("upload refused: not a readable Word file (%s)", type(exc).__name__)
            return Checked(None, Refusal.DAMAGED)
    return Checked(extension, mime=mime)


def check_word(source: BinaryIO, size: int, caps: UploadCaps) -> None:
    """Raise unless this zip is a Word document within the caps; stops at the first cap."""
    entries, directory = declared_directory(source, size)
    if entries > caps.office_max_entries:
        raise OverCap(f"{entries} entries declared")
    if directory > caps.office_max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise OverCap(f"central directory of {directory} bytes")  # before zipfile parses it
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        if len(infos) > caps.office_max_entries:
            raise OverCap(f"{len(infos)} entries")
        if not {info.filename for info in infos}.issuperset(WORD_PARTS):
            raise zipfile.BadZipFile("not a Word document")
        declared = sum(info.file_size for info in infos)
        if declared > caps.office_max_unpacked_bytes:
            raise OverCap(f"{declared} bytes inflated declared")
        for info in infos:
            if info.file_size > _allowed(info, caps):
                raise OverCap(f"ratio declared {info.file_size}/{info.compress_size}")
        budget = caps.office_max_unpacked_bytes
        types = next(info for info in infos if info.filename == CONTENT_TYPES)
        budget, head = inflate(archive, types, budget, caps, keep=TYPES_READ)
        if WORD_MAIN not in head:
            raise zipfile.BadZipFile("not a Word document")
        for info in infos:
            if info is not types:
                budget, _ = inflate(archive, info, budget, caps)


def declared_directory(source: BinaryIO, size: int) -> tuple[int, int]:
    """(entries, bytes) of the central directory, as the zip's end record declares them."""
    tail_size = min(size, END_RECORD.size + 0xFFFF)  # the record, and a comment of ≤ 64 KB
    source.seek(size - tail_size)
    tail = source.read(tail_size)
    at = tail.rfind(END_SIGNATURE)
    if at < 0 or at + END_RECORD.size > len(tail):
        raise zipfile.BadZipFile("no end of central directory")
    _, _, _, _, entries, directory, _, _ = END_RECORD.unpack_from(tail, at)
    return entries, directory  # a ZIP64 archive declares 0xFFFF entries: over any cap


def inflate(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, caps: UploadCaps, keep: int = 0
) -> tuple[int, bytes]:
    """Inflate one entry in chunks, counting against the caps; (budget left, its first
    `keep` bytes). zipfile checks the CRC at the end, so a lying size is caught."""
    allowed = min(budget, _allowed(info, caps))
    kept = bytearray()
    inflated = 0
    with archive.open(info) as entry:
        while chunk := entry.read(CHUNK):
            inflated += len(chunk)
            if inflated > allowed:
                raise OverCap(f"{info.filename!r} inflates past {allowed} bytes")
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
    return budget - inflated, bytes(kept)


def _allowed(info: zipfile.ZipInfo, caps: UploadCaps) -> int:
    return max(RATIO_GRACE, info.compress_size * caps.office_max_ratio)


@dataclass
class UploadChecker:
    """Checks uploads in worker threads, a few at a time: each may take a CPU for a moment."""

    caps: UploadCaps = field(default_factory=UploadCaps)
    at_once: int = 2
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.at_once)

    async def check(self, file: UploadedFile) -> Checked:
        """The accepted type of the file, or why it is refused."""
        if file.size > self.caps.max_bytes:  # known from receiving it: nothing to read
            return Checked(None, Refusal.TOO_LARGE)
        async with self._slots:
            return await asyncio.to_thread(self._check, file)

    def _check(self, file: UploadedFile) -> Checked:
        with file.open() as source:
            return check(source, self.caps)
