"""The web chat's first page on a slow network: compressed on the wire, ≤ 100 KB in all
(the page, its CSS and JS; fonts come from the system), and the same bytes once unpacked.
The time to the first answer under throttling is measured by bench/page_bench.py."""

from __future__ import annotations

import re
import zlib

import aiohttp

from webserver import (
    Served,
    served_fixture,  # noqa: F401 (fixtures, found by their names)
)

FIRST_PAGE_LIMIT = 100 * 1024


def unpack(body: bytes, coding: str) -> bytes:
    return zlib.decompress(body, 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS)


async def test_first_page_is_compressed_and_under_100_kb(served: Served) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(served.url, headers={"Accept-Encoding": "gzip, deflate"}) as got:
            page = await got.read()
            coding = got.headers.get("Content-Encoding", "")
        assert coding in ("gzip", "deflate")
        html = unpack(page, coding).decode()
        assert len(page) < len(html.encode()) / 1.5
        wire = len(page)
        assets = re.findall(r'(?:href|src)="(static/[^"]+)"', html)
        assert {"static/app.css", "static/app.js"} <= set(assets)
        for asset in assets:
            async with client.get(served.url + asset, headers={"Accept-Encoding": "gzip"}) as got:
                body = await got.read()
                coding = got.headers.get("Content-Encoding", "")
                assert got.headers.get("Vary") == "Accept-Encoding"
            async with client.get(
                served.url + asset, headers={"Accept-Encoding": "identity"}
            ) as raw:
                plain = await raw.read()
                assert "Content-Encoding" not in raw.headers  # only to browsers that accept it
            assert coding in ("gzip", "deflate") and unpack(body, coding) == plain
            wire += len(body)
    assert wire <= FIRST_PAGE_LIMIT
