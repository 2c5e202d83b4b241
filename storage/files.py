"""Files kept on disk by content hash, with a row per distinct content."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CaseFile, StoredFile

CHUNK = 64 * 1024


def path_for(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def write_blob(root: Path, content: bytes) -> str:
    """Write content under its SHA-256 (atomically; a second write of it is a no-op)."""
    return keep(root, io.BytesIO(content))[0]


def keep(root: Path, source: BinaryIO) -> tuple[str, int]:
    """Copy a stream under its SHA-256, in chunks and atomically (blocking: run it in a
    thread for a large file); returns (sha256, size)."""
    root.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        sha256 = digest.hexdigest()
        target = path_for(root, sha256)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return sha256, size


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
    return await link(session, case_id, sha256, len(content), name, mime, kind, uploaded_by)


async def link(
    session: AsyncSession,
    case_id: int,
    sha256: str,
    size: int,
    name: str,
    mime: str,
    kind: str,
    uploaded_by: str,
) -> CaseFile:
    """Link stored content (files.keep) to the case in the caller's transaction."""
    if await session.get(StoredFile, sha256) is None:
        session.add(StoredFile(sha256=sha256, size=size, mime=mime))
        await session.flush()
    existing = await session.scalar(
        select(CaseFile).where(CaseFile.case_id == case_id, CaseFile.sha256 == sha256)
    )
    if existing is not None:  # the same content again: one link is enough
        return existing
    linked = CaseFile(case_id=case_id, sha256=sha256, name=name, kind=kind, uploaded_by=uploaded_by)
    session.add(linked)
    return linked


def remove_blob(root: Path, sha256: str) -> None:
    """Delete a stored file from disk (its row is gone); missing already is fine."""
    path_for(root, sha256).unlink(missing_ok=True)


def read(root: Path, sha256: str) -> bytes:
    return path_for(root, sha256).read_bytes()


async def for_case(session: AsyncSession, case_id: int) -> list[CaseFile]:
    query = select(CaseFile).where(CaseFile.case_id == case_id).order_by(CaseFile.id)
    return list((await session.scalars(query)).all())
