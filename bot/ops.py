"""The ops HTTP server of every long-running process: /healthz, /readyz and /metrics.

Off unless OPS_PORT is set. /healthz answers while the event loop runs; /readyz checks the
database, Redis (when configured) and the files directory, which are required, and the
holiday calendar's coverage, which is reported but does not fail readiness; /metrics is the
Prometheus text format of services/metrics.py, with the database figures read at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bot.app import App
from bot.config import Settings
from services import metrics
from services.workdays import official, today_in_china
from storage import stats
from storage.models import utcnow
from storage.state_sqlite import SqliteStateStore

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 3.0
CALENDAR_CHECK_EVERY = 24 * 3600.0


@dataclass(frozen=True)
class Check:
    name: str
    required: bool
    run: Callable[[], Awaitable[str | None]]  # None when fine, else what is wrong


def check_files(directory: Path) -> str | None:
    """The files directory exists (or can be made) and this process may write there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create: {exc.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "not writable"
    return None


async def check_calendar() -> str | None:
    return official().coverage_warning(today_in_china())


def readiness_checks(app: App) -> list[Check]:
    services = app.services

    async def database() -> None:
        await services.db.ping()

    async def state_store() -> None:
        await services.state.ping()

    checks = [Check("database", True, database)]
    if app.settings.redis_url:
        checks.append(Check("redis", True, state_store))
    elif isinstance(services.state, SqliteStateStore):  # every update reads and writes it
        checks.append(Check("state", True, state_store))
    checks.append(Check("files", True, lambda: asyncio.to_thread(check_files, services.files_dir)))
    checks.append(Check("calendar", False, check_calendar))
    return checks


async def run_check(check: Check) -> dict[str, object]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            problem = await check.run()
    except TimeoutError:
        problem = "timed out"
    except Exception as exc:
        problem = type(exc).__name__
    result: dict[str, object] = {"ok": problem is None, "required": check.required}
    if problem is not None:
        result["detail"] = problem
    return result


async def refresh_gauges(app: App) -> None:
    """Set the gauges that describe the database."""
    now = utcnow()
    async with app.services.db.sessions() as session:
        outbox = await stats.outbox_by_channel(session)
        cases = await stats.cases_by_status(session)
        past_sla = await stats.questions_past_sla(session)
    for gauge in (
        metrics.OUTBOX_BACKLOG,
        metrics.OUTBOX_OLDEST,
        metrics.OUTBOX_DEAD,
        metrics.CASES,
    ):
        gauge.clear()
    for channel in outbox:
        metrics.OUTBOX_BACKLOG.labels(channel.channel).set(channel.pending)
        age = (now - channel.oldest_pending).total_seconds() if channel.oldest_pending else 0.0
        metrics.OUTBOX_OLDEST.labels(channel.channel).set(max(age, 0.0))
        metrics.OUTBOX_DEAD.labels(channel.channel).set(channel.dead)
    for status, count in cases.items():
        metrics.CASES.labels(status).set(count)
    metrics.QUESTIONS_PAST_SLA.set(past_sla)
    metrics.CALENDAR_DAYS.set(official().days_covered(today_in_china(now)))


def web_app(app: App) -> web.Application:
    checks = readiness_checks(app)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(request: web.Request) -> web.Response:
        results = await asyncio.gather(*(run_check(check) for check in checks))
        report = dict(zip((check.name for check in checks), results, strict=True))
        ready = all(r["ok"] for r, c in zip(results, checks, strict=True) if c.required)
        return web.json_response({"ok": ready, "checks": report}, status=200 if ready else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        try:
            await refresh_gauges(app)
        except Exception as exc:  # the counters are still worth serving
            log.warning("metrics: database figures unavailable error=%s", type(exc).__name__)
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", metrics_page)
    return application


class OpsServer:
    def __init__(self, app: App, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(web_app(self.app), handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        host, port = self._runner.addresses[0][:2]
        self.address = (str(host), int(port))
        log.info("ops server listening port=%s", port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def serving(settings: Settings, app: App) -> AsyncIterator[OpsServer | None]:
    """The ops server while inside, if OPS_PORT is set."""
    if settings.ops_port is None:
        yield None
        return
    server = OpsServer(app, settings.ops_host, settings.ops_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def watch_calendar(stop: asyncio.Event, every: float = CALENDAR_CHECK_EVERY) -> None:
    """Warn now and then daily while the holiday calendar covers fewer than 60 days ahead."""
    while not stop.is_set():
        warning = official().coverage_warning(today_in_china())
        if warning is not None:
            log.warning(warning)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
