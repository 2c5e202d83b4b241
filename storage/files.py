"""Files kept on disk by content hash, with a row per distinct content."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import filetype
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CaseFile, StoredFile

# What an applicant may upload, by the type its bytes show (not its name or claimed MIME).
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
DOCX_PARTS = ("[Content_Types].xml", "word/document.xml")
DOCX_MAX_UNPACKED = 200 * 1024 * 1024  # a zip bomb is not a document


def sniff(content: bytes) -> str | None:
    """The extension of an accepted file type the content really has, else None."""
    kind = filetype.guess(content)
    extension = EXTENSIONS.get(kind.mime) if kind is not None else None
    if extension == ".docx" and not _is_docx(content):
        return None
    return extension


def _is_docx(content: bytes) -> bool:
    """A readable zip with the parts of a Word document, of a sane unpacked size."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
            names = {entry.filename for entry in entries}
            unpacked = sum(entry.file_size for entry in entries)
            types = archive.read(DOCX_PARTS[0]) if DOCX_PARTS[0] in names else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, RuntimeError):
        return False
    return (
        all(part in names for part in DOCX_PARTS)
        and unpacked <= DOCX_MAX_UNPACKED
        and b"wordprocessingml.document.main+xml" in types
    )


def path_for(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def write_blob(root: Path, content: bytes) -> str:
    """Write content under its SHA-256 (atomically; a second write of it is a no-op)."""
    sha256 = hashlib.sha256(content).hexdigest()
    target = path_for(root, sha256)
    if target.exists():
        return sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(tmp, target)
    return sha256


async def attach(
    session: AsyncSession,
    root: Path,
    case_id: int,
    name: str,
    content: bytes,
    mime: str,
    kind: str,
    uploaded_by: str,
) -> CaseFile:
    """Store the content and link it to the case in the caller's transaction."""
    sha256 = write_blob(root, content)
    if await session.get(StoredFile, sha256) is None:
        session.add(StoredFile(sha256=sha256, size=len(content), mime=mime))
        await session.flush()
    existing = await session.scalar(
        select(CaseFile).where(CaseFile.case_id == case_id, CaseFile.sha256 == sha256)
    )
    if existing is not None:  # the same content again: one link is enough
        return existing
    link = CaseFile(case_id=case_id, sha256=sha256, name=name, kind=kind, uploaded_by=uploaded_by)
    session.add(link)
    return link


def remove_blob(root: Path, sha256: str) -> None:
    """Delete a stored file from disk (its row is gone); missing already is fine."""
    path_for(root, sha256).unlink(missing_ok=True)


def read(root: Path, sha256: str) -> bytes:
    return path_for(root, sha256).read_bytes()


async def for_case(session: AsyncSession, case_id: int) -> list[CaseFile]:
    query = select(CaseFile).where(CaseFile.case_id == case_id).order_by(CaseFile.id)
    return list((await session.scalars(query)).all())
