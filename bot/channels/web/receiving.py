"""Receiving a 补正 upload over HTTP: the request checked before its body is read, then the
file streamed to a temporary file with the size cap enforced while reading."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

SPOOL = "incoming"  # under FILES_DIR: on disk (a tmpfs /tmp would hold uploads in memory)
CHUNK = 64 * 1024
# What a multipart request adds around the file (boundaries, part headers), for refusing a
# declared Content-Length over the cap before reading anything.
ENVELOPE = 64 * 1024
# RFC 2046 §5.1.1: 1 to 70 of these characters, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# What aiohttp raises on a malformed body or part header (its own limits: 8190 bytes a header
# line, 128 headers), and a client that goes away mid-body.
MALFORMED = (ValueError, HttpProcessingError, OSError)


@dataclass(frozen=True)
class Received:
    """A file as received: on disk at `path`, or (path None) over the cap and not kept."""

    name: str
    mime: str
    size: int
    path: Path | None


def multipart(request: web.Request) -> MultipartReader:
    """A reader for a multipart/form-data request; 415 or 400 before any of the body is read."""
    mimetype = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, ""))
    if (mimetype.type, mimetype.subtype) != ("multipart", "form-data"):
        raise web.HTTPUnsupportedMediaType(text="multipart/form-data expected")
    if not _BOUNDARY.fullmatch(mimetype.parameters.get("boundary", "")):
        raise web.HTTPBadRequest(text="multipart boundary missing or malformed")
    try:
        return MultipartReader(request.headers, request.content)
    except MALFORMED:
        raise web.HTTPBadRequest(text="multipart boundary malformed") from None


async def file_part(reader: MultipartReader) -> BodyPartReader:
    """The request's first part, which must be the file field; 400 otherwise."""
    try:
        part = await reader.next()
        name = part.filename if isinstance(part, BodyPartReader) else None
    except MALFORMED:
        raise web.HTTPBadRequest(text="malformed multipart body") from None
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise web.HTTPBadRequest(text="a part named file expected")
    if name is not None and any(unicodedata.category(c) == "Cc" for c in name):
        raise web.HTTPBadRequest(text="control characters in the file name")
    return part


class Spool:
    """The temporary file an upload is written to (small, cheap syscalls: 64 KB writes go to
    the page cache, so they stay on the event loop)."""

    def __init__(self, root: Path) -> None:
        fd, name = tempfile.mkstemp(dir=root / SPOOL, prefix="upload-")
        self.path = Path(name)
        self.size = 0
        self._handle = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self.size += len(chunk)

    def close(self) -> Path:
        self._handle.close()
        return self.path

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


async def receive(part: BodyPartReader, limit: int, declared: int | None, root: Path) -> Received:
    """Stream the part to a file under `root`, stopping past `limit` bytes (a declared
    Content-Length far over it stops before reading); 400 for a malformed or empty body."""
    name = part.filename or "file"
    mime = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
    if declared is not None and declared > limit + ENVELOPE:
        return Received(name, mime, declared, None)
    spool = Spool(root)
    try:
        while chunk := await part.read_chunk(CHUNK):
            if spool.size + len(chunk) > limit:
                spool.discard()
                return Received(name, mime, spool.size + len(chunk), None)
            spool.write(chunk)
        if not part.at_eof():  # the body ended before the part's closing boundary
            raise ValueError("truncated")
    except MALFORMED:
        spool.discard()
        raise web.HTTPBadRequest(text="malformed multipart body") from None
    except BaseException:
        spool.discard()
        raise
    if spool.size == 0:
        spool.discard()
        raise web.HTTPBadRequest(text="empty file")
    return Received(name, mime, spool.size, spool.close())


def discard(received: Received) -> None:
    """Remove the spooled file once the core has answered (it copied what it keeps)."""
    if received.path is not None:
        received.path.unlink(missing_ok=True)


def prepare(root: Path) -> None:
    """Make the directory uploads are spooled to."""
    (root / SPOOL).mkdir(parents=True, exist_ok=True)
