"""Screenshots of the real web chat for the docs: `.venv/bin/python scripts/screenshots.py`.

Starts `bangdaiban web` on the embedded defaults (SQLite + memory) in a temporary directory on a
free port, drives Debian's Chromium through Playwright (`apt-get install chromium`; Playwright
never downloads a browser here), has a short conversation, and saves docs/img/web-chat-*.png at
desktop and phone size. Run it again after changing the page or its texts.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-component-update"]
ADDRESS = re.compile(r"Web chat: (http://\S+)")
START_TIMEOUT = 120.0  # seconds: the first start migrates and seeds the database
IDLE = 'body[data-connected="true"][data-waiting="0"]'  # every message sent has its answer
# (file name, viewport, device scale factor, is a phone)
SIZES = [
    ("web-chat-desktop.png", {"width": 1280, "height": 800}, 1, False),
    ("web-chat-phone.png", {"width": 390, "height": 844}, 2, True),
]
QUESTION = "施工许可证办下来要多长时间？"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def web_chat(workdir: Path) -> Iterator[str]:
    """`bangdaiban web` in `workdir` on a free port; yields the address it printed."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the venv has installed
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(free_port()),
        "LOG_FORMAT": "console",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "WEB_BASE_PATH", "WEB_PUBLIC_URL"):
        env.pop(name, None)  # the embedded defaults, whatever this shell exports
    command = [str(Path(sys.executable).parent / "bangdaiban"), "web"]
    log = (workdir / "web.log").open("w+")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (found := ADDRESS.search(output := (workdir / "web.log").read_text())) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bangdaiban web did not start:\n{output}")
            time.sleep(0.2)
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def converse(page: Page, url: str) -> None:
    """Open the chat, show the menu and ask a question the FAQ answers."""
    page.goto(url)
    page.wait_for_selector("body[data-history]", timeout=30_000)
    page.wait_for_selector(IDLE, timeout=30_000)
    for text in ("/start", QUESTION):
        page.get_by_role("textbox", name="输入消息").fill(text)
        page.get_by_role("button", name="发送", exact=True).click()
        page.wait_for_selector(IDLE, timeout=30_000)
    page.get_by_role("textbox", name="输入消息").blur()  # no focus ring in the picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bdb-screens-") as tmp,
        web_chat(Path(tmp)) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        for name, viewport, scale, phone in SIZES:
            context = browser.new_context(
                viewport=viewport,  # type: ignore[arg-type]
                device_scale_factor=scale,
                is_mobile=phone,
                has_touch=phone,
                locale="zh-CN",
            )
            page = context.new_page()
            converse(page, url)
            page.screenshot(path=str(args.out / name))
            print(f"saved {args.out / name}")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
