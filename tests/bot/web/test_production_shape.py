"""The production shape, run for real: Caddy (deploy/Caddyfile, its internal CA) in front of two
`bangdaiban web` processes and a worker on PostgreSQL + Redis, Chromium through https://.

- a notice written by another process reaches the page through NOTIFY (the instances' poll
  is set to an hour, so nothing else could deliver it);
- a staff browser revoked from the command line is signed out at once;
- the instance holding the page is killed mid-conversation: the page reconnects through the
  proxy to the other one, and nothing is lost or repeated."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from bot.app import App
from conftest import require_tool
from storage import outbox
from storage.models import Applicant
from storage.outbox import Recipient
from webpage import bot_texts, idle, open_chat, say
from webserver import chromium

pytestmark = pytest.mark.parametrize("backend", ["production"])
ROOT = Path(__file__).resolve().parents[3]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
REDIS_URL = "redis://127.0.0.1:6379/14"  # the processes' own Redis database (default prefix)
BANGDAIBAN = Path(sys.executable).with_name("bangdaiban")
STARTUP = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Deployment:
    url: str
    web: list[Process]
    env: dict[str, str]


def caddy() -> str:
    return require_tool("caddy", "caddy")


async def wait_for_port(port: int, process: Process) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP
    while asyncio.get_running_loop().time() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"{process.name} did not listen on {port}:\n{process.text()}")


@contextmanager
def started(tmp: Path) -> Iterator[list[Process]]:
    running: list[Process] = []
    try:
        yield running
    finally:
        for process in running:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.popen.wait(30)
            except subprocess.TimeoutExpired:
                process.popen.kill()


def spawn(
    running: list[Process], tmp: Path, name: str, argv: list[str], env: dict[str, str]
) -> Process:
    log = tmp / f"{name}.log"
    handle = log.open("w")
    popen = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    process = Process(name, popen, log)
    running.append(process)
    return process


@pytest.fixture
async def deployment(app: App, tmp_path: Path) -> AsyncIterator[Deployment]:
    proxy = caddy()
    redis = app.services.state.redis
    assert redis is not None
    flush = await redis.from_url(REDIS_URL)
    await flush.flushdb()
    await flush.aclose()
    front = free_port()
    url = f"https://localhost:{front}/"
    env = {
        **os.environ,
        "DATABASE_URL": app.settings.database_url,
        "REDIS_URL": REDIS_URL,
        "FILES_DIR": str(tmp_path / "files"),
        "WEB_SECRET": "e2e-secret",
        "WEB_TRUST_PROXY": "true",
        "WEB_PUBLIC_URL": url,
        "WEB_POLL_SECONDS": "3600",
        "RUN_WORKER": "false",
        "LOG_FORMAT": "console",
        "PYTHONPATH": str(ROOT),
    }
    with started(tmp_path) as running:
        ports = [free_port(), free_port()]
        web = [
            spawn(
                running,
                tmp_path,
                f"web{n}",
                [str(BANGDAIBAN), "web"],
                {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)},
            )
            for n, port in enumerate(ports, 1)
        ]
        spawn(running, tmp_path, "worker", [str(BANGDAIBAN), "worker"], env)
        caddy_env = {
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "caddy-data"),
            "XDG_CONFIG_HOME": str(tmp_path / "caddy-config"),
            "WEB_SITE_ADDRESS": f"localhost:{front}",
            "CADDY_CERTS": "local_certs",
            # The first instance while it lives: the test knows where the page is.
            "WEB_UPSTREAMS": " ".join(["to", *(f"127.0.0.1:{p}" for p in ports)]),
            "WEB_LB_POLICY": "first",
        }
        argv = [proxy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
        proxy_process = spawn(running, tmp_path, "caddy", argv, caddy_env)
        for port, process in zip(ports, web, strict=True):
            await wait_for_port(port, process)
        await wait_for_port(front, proxy_process)
        yield Deployment(url, web, env)


async def web_chat_id(app: App) -> str:
    async with app.services.db.sessions() as session:
        found = await session.scalar(
            select(Applicant.chat_id).where(Applicant.channel == "web").order_by(Applicant.id)
        )
    assert found is not None
    return found


async def cli(deployment: Deployment, *argv: str) -> str:
    """Run `bangdaiban ARGV…` as an operator would; its output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        str(BANGDAIBAN),
        *argv,
        env=deployment.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output
    return output.decode()


async def log_shows(page: Page, text: str) -> None:
    await expect(page.locator("#log .msg.bot", has_text=text)).to_have_count(1, timeout=20_000)


async def test_caddy_two_instances_notices_revocation_and_a_killed_instance(
    app: App, deployment: Deployment
) -> None:
    async with chromium() as browser:
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await open_chat(page, deployment.url)
        assert (await page.evaluate("location.protocol")) == "https:"
        await say(page, "/help")
        chat_id = await web_chat_id(app)

        # A notice from another process: NOTIFY wakes the instance holding the socket.
        async with app.services.db.transaction() as session:
            outbox.enqueue(session, Recipient("web", chat_id), "通知一：您的申请已受理。", "e2e:1")
        await log_shows(page, "通知一")

        # The instance holding the page dies; the page reconnects through Caddy to the other.
        before = await bot_texts(page)
        deployment.web[0].popen.kill()
        deployment.web[0].popen.wait(30)
        await expect(page.locator("body[data-connected='true']")).to_have_count(1, timeout=30_000)
        async with app.services.db.transaction() as session:
            outbox.enqueue(session, Recipient("web", chat_id), "通知二：请补正材料。", "e2e:2")
        await log_shows(page, "通知二")
        await say(page, "/help")
        await idle(page)
        after = await bot_texts(page)
        # Nothing lost (the history may order a notice and a reply that crossed differently).
        assert not Counter(before) - Counter(after), (before, after)
        assert sum("通知一" in t for t in after) == 1 and sum("通知二" in t for t in after) == 1
        await page.reload()  # the history after the failover: each message once
        await page.wait_for_selector("body[data-history]", timeout=20_000)
        reloaded = await bot_texts(page)
        assert sum("通知一" in t for t in reloaded) == 1
        assert sum("通知二" in t for t in reloaded) == 1
        await context.close()


async def test_a_staff_browser_revoked_from_the_command_line_is_signed_out(
    app: App, deployment: Deployment
) -> None:
    invite = await cli(deployment, "staff", "invite", "李娜")
    code = re.search(r"/bind\s+(\S+)", invite)
    assert code, invite
    async with chromium() as browser:
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await open_chat(page, deployment.url)
        await say(page, f"/bind {code.group(1)}")
        await page.wait_for_selector("body[data-staff='true']", timeout=20_000)
        listing = await cli(deployment, "staff", "devices", "李娜")
        device = re.search(r"#(\d+)", listing)
        assert device, listing
        await cli(deployment, "staff", "devices", "李娜", "--revoke", device.group(1))
        # Signed out: the page reloads into the visitor's own chat (no staff bar).
        await expect(page.locator("body[data-staff='true']")).to_have_count(0, timeout=20_000)
        await context.close()
