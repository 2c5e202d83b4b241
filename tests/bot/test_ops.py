"""The ops server: liveness, readiness per dependency, Prometheus metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App, build_app
from bot.config import load_settings
from bot.ops import OpsServer
from conftest import require_tool
from storage import outbox
from storage.outbox import Recipient
from support import Chat


@pytest.fixture
async def ops(app: App) -> AsyncIterator[str]:
    server = OpsServer(app, "127.0.0.1", 0)
    await server.start()
    assert server.address is not None
    yield f"http://127.0.0.1:{server.address[1]}"
    await server.stop()


async def get(url: str) -> tuple[int, str]:
    async with ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def get_json(url: str) -> tuple[int, Any]:
    async with ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


def sample(page: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_healthz_and_readyz_on_a_working_setup(ops: str, app: App) -> None:
    assert await get_json(f"{ops}/healthz") == (200, {"ok": True})
    status, body = await get_json(f"{ops}/readyz")
    assert status == 200 and body["ok"] is True
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "required": True}
    assert checks["files"] == {"ok": True, "required": True}
    assert ("redis" in checks) == (app.settings.redis_url is not None)
    # The calendar is reported (2026-12-31 is fewer than 60 days ahead today) but not required.
    assert checks["calendar"]["required"] is False


async def test_readyz_reports_the_embedded_state_file(embedded_app: App) -> None:
    server = OpsServer(embedded_app, "127.0.0.1", 0)
    await server.start()
    assert server.address is not None
    url = f"http://127.0.0.1:{server.address[1]}/readyz"
    try:
        status, body = await get_json(url)
        assert status == 200 and body["checks"]["state"] == {"ok": True, "required": True}
        await embedded_app.services.state.close()  # conversations can no longer be kept
        status, body = await get_json(url)
        assert status == 503 and body["checks"]["state"]["ok"] is False
    finally:
        await server.stop()


async def test_metrics_count_a_handled_update_and_the_outbox(
    ops: str, chat: Chat, app: App
) -> None:
    _, before = await get(f"{ops}/metrics")
    await chat.say("/start")
    async with app.services.db.transaction() as session:
        outbox.enqueue(session, Recipient("telegram", "42"), "x", key="metrics-test")
    status, after = await get(f"{ops}/metrics")
    assert status == 200
    handled = "bdb_updates_handled_total"
    assert sample(after, handled, channel="test", outcome="ok") == (
        sample(before, handled, channel="test", outcome="ok") + 1
    )
    assert sample(after, "bdb_update_seconds_count", channel="test") >= 1
    assert sample(after, "bdb_outbox_backlog", channel="telegram") == 1
    assert sample(after, "bdb_outbox_oldest_pending_seconds", channel="telegram") >= 0
    assert "bdb_questions_past_sla" in after and "bdb_calendar_days_covered" in after


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_readyz_is_503_when_redis_stops(tmp_path: Path) -> None:
    redis_server = require_tool("redis-server", "redis-server")
    port = free_port()
    redis = await asyncio.create_subprocess_exec(
        redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
        "no", "--dir", str(tmp_path), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bdb.db'}",
        redis_url=f"redis://127.0.0.1:{port}/0",
        files_dir=tmp_path / "files",
    )
    app = server = None
    try:
        async with asyncio.timeout(60):  # until it accepts connections (a hang guard only)
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        app = await build_app(settings)
        server = OpsServer(app, "127.0.0.1", 0)
        await server.start()
        assert server.address is not None
        url = f"http://127.0.0.1:{server.address[1]}/readyz"
        status, body = await get_json(url)
        assert status == 200 and body["checks"]["redis"]["ok"] is True
        redis.terminate()  # by pid: this test's own Redis, never the shared one
        await redis.wait()
        status, body = await get_json(url)
        assert status == 503 and body["ok"] is False
        assert body["checks"]["redis"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
    finally:
        if redis.returncode is None:
            redis.kill()
            await redis.wait()
        if server is not None:
            await server.stop()
        if app is not None:
            await app.close()
