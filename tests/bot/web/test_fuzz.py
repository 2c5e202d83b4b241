"""Whatever a stranger sends the web chat — websocket frames, any method on any path — gets no
5xx, logs no unhandled error, and the server keeps answering (Hypothesis). Upload requests
are fuzzed in test_uploads.py."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_app
from bot.config import load_settings
from webserver import serve

PAGE_TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@dataclass
class Running:
    url: str
    errors: list[logging.LogRecord]


class _Errors(logging.Handler):
    """Collects ERROR records (an unhandled exception in a handler is logged at ERROR)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The web chat on the embedded default, in a thread with its own event loop, so each
    Hypothesis example (a plain function) talks to it over real sockets."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        config = load_settings(
            database_url=f"sqlite+aiosqlite:///{root / 'bdb.db'}",
            files_dir=root / "files",
            web_ip_limit=1_000_000,  # the fuzzer is one address: limits are tested elsewhere
        )
        app = await build_app(config)
        runner, served = await serve(app)
        holder["url"] = served.url
        ready.set()
        await stop.wait()
        await runner.cleanup()
        await app.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    thread.start()
    assert ready.wait(60), "the web chat did not start"
    try:
        yield Running(holder["url"], errors.records)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        logging.getLogger().removeHandler(errors)


def _origin(url: str) -> str:
    return url.split("/", 3)[0] + "//" + url.split("/", 3)[2]


async def _visit(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(url) as response:
        assert response.status == 200
        match = PAGE_TOKEN.search(await response.text())
    assert match
    return match.group(1)


async def _still_answers(client: aiohttp.ClientSession, url: str) -> None:
    """A fresh visitor's /start is answered: the server is alive and not wedged."""
    ws_url = url.replace("http://", "ws://") + "ws"
    async with client.ws_connect(ws_url, headers={"Origin": _origin(url)}) as ws:
        assert (await ws.receive_json(timeout=30))["type"] == "history"
        await ws.send_json({"type": "text", "text": "/start"})
        while (await ws.receive_json(timeout=30))["type"] != "answer":
            pass


def _new_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=300)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=2000),
    st.binary(max_size=2000),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["text", "button", "open", "", "history", "bind"]),
            "text": json_values,
            "data": st.one_of(st.text(max_size=400), json_values),
            "label": json_values,
            "target": st.one_of(
                st.text(max_size=80), st.sampled_from(["case:BDB-2026-000001", "question:1"])
            ),
        }
    ).map(json.dumps),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sent=st.lists(frames, min_size=1, max_size=6))
def test_any_websocket_frames_leave_the_server_answering(
    running: Running, sent: list[str | bytes]
) -> None:
    async def session() -> None:
        async with _new_client() as client:
            await _visit(client, running.url)
            ws_url = running.url.replace("http://", "ws://") + "ws"
            headers = {"Origin": _origin(running.url)}
            async with client.ws_connect(ws_url, headers=headers) as ws:
                await ws.receive_json(timeout=30)  # history
                for frame in sent:
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
            await _still_answers(client, running.url)

    asyncio.run(session())
    assert not running.errors, [r.getMessage() for r in running.errors]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]),
    path=st.one_of(
        st.sampled_from(
            ["", "ws", "upload", "desk", "staff/bind", "staff/unbind", "file/x", "form/x.docx"]
        ),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"),
            max_size=60,
        ),
    ),
    body=st.binary(max_size=500),
)
def test_any_request_to_any_path_gets_an_answer_below_500(
    running: Running, method: str, path: str, body: bytes
) -> None:
    async def session() -> None:
        async with _new_client() as client:
            token = await _visit(client, running.url)
            headers = {"Origin": _origin(running.url), "X-CSRF-Token": token}
            url = running.url + quote(path, safe="/") if path else running.url
            async with client.request(method, url, data=body, headers=headers) as answer:
                await answer.read()
                assert answer.status < 500, (method, path, answer.status)

    asyncio.run(session())
    assert not running.errors, [r.getMessage() for r in running.errors]
