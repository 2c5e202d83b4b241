"""The web chat's first visit on a slow network, as a phone in WeChat would make it.

The real server (`bangdaiban web`, embedded defaults) runs as its own process; Debian's
Chromium, driven by Playwright, opens the page in a 360×640 viewport with the network
throttled by Chromium itself (CDP Network.emulateNetworkConditions). It prints, per profile:

- page weight: bytes over the wire (compressed, headers included) of every response until
  the first answer is shown; target ≤ 100 KB;
- first answer: from the start of navigation to the greeting bubble on screen (a
  MutationObserver in the page notes the first frame after it appears); target ≤ 3 s.

Profiles: Chromium DevTools' own "Slow 3G" preset (500 kbit/s, 400 ms RTT, which DevTools
applies as 2,000 ms per request) and WebPageTest's "3G Slow" (400 kbit/s, 400 ms RTT).

    .venv/bin/python bench/page_bench.py [--runs 3] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from web_bench import wait_ready  # noqa: E402

WEIGHT_TARGET = 100 * 1024
ANSWER_TARGET = 3.0
VIEWPORT = {"width": 360, "height": 640}


@dataclass(frozen=True)
class Profile:
    name: str
    latency_ms: float  # added by Chromium to every request
    down_bytes: float  # per second
    up_bytes: float


PROFILES = [
    Profile("DevTools Slow 3G", 400 * 5, 500_000 / 8 * 0.8, 500_000 / 8 * 0.8),
    Profile("WebPageTest 3G Slow", 400, 400_000 / 8, 400_000 / 8),
]

# Notes when the first bot bubble is on screen (added through CDP, so the CSP allows it): the
# first frame after it enters the page. A frame waits for render-blocking CSS, so a bubble in
# the HTML counts only once it is painted, not when it is parsed.
WATCH = """
new MutationObserver((changes, observer) => {
  if (document.querySelector('#log .msg.bot')) {
    observer.disconnect();
    requestAnimationFrame(() => setTimeout(() => { window.__firstAnswer = performance.now(); }));
  }
}).observe(document, {childList: true, subtree: true});
"""

TRACE = """JSON.stringify(performance.getEntries().map(e => [e.name.slice(-20), e.entryType,
  Math.round(e.startTime), Math.round(e.responseStart || 0), Math.round(e.duration)]))"""


async def visit(browser: Browser, url: str, profile: Profile) -> tuple[float, int]:
    """One first visit (fresh context: no cache, no cookie): seconds to the first answer and
    bytes over the wire until then."""
    context = await browser.new_context(viewport=VIEWPORT, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.add_init_script(WATCH)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": profile.latency_ms,
            "downloadThroughput": profile.down_bytes,
            "uploadThroughput": profile.up_bytes,
        },
    )
    wire: dict[str, int] = {}
    cdp.on(
        "Network.loadingFinished",
        lambda e: wire.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    frames = [0]
    cdp.on(
        "Network.webSocketFrameReceived",
        lambda e: frames.__setitem__(0, frames[0] + len(e["response"]["payloadData"].encode())),
    )
    await page.goto(url, wait_until="commit")
    await page.wait_for_selector("#log .msg.bot", timeout=120_000)
    while (painted := await page.evaluate("window.__firstAnswer")) is None:
        await page.wait_for_timeout(20)  # the page's CSP refuses wait_for_function's eval
    seconds = painted / 1000
    if os.environ.get("PAGE_BENCH_TRACE"):
        print(await page.evaluate(TRACE))
    await context.close()
    return seconds, sum(wire.values()) + frames[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bdb-page-"))
    env = {
        **os.environ,
        "WEB_PORT": str(args.port),
        "WEB_SECRET": "bench",
        "WEB_IP_LIMIT": "100000",
        "LOG_LEVEL": "WARNING",
        "FILES_DIR": str(workdir / "files"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
    }
    bangdaiban = str(Path(sys.executable).parent / "bangdaiban")
    proc = subprocess.Popen([bangdaiban, "web"], env=env, cwd=workdir)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{args.port}/"
    try:
        await wait_ready(url, proc)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=args.chromium, headless=True, args=["--no-sandbox"]
            )
            await visit(browser, url, PROFILES[-1])  # warm the server (templates, FAQ)
            print(f"first visit, 360×640, {args.runs} runs each (median; worst)")
            for profile in PROFILES:
                results = [await visit(browser, url, profile) for _ in range(args.runs)]
                times = [t for t, _ in results]
                weight = max(w for _, w in results)
                ok_time = "ok" if statistics.median(times) <= ANSWER_TARGET else "MISSED"
                ok_weight = "ok" if weight <= WEIGHT_TARGET else "MISSED"
                print(
                    f"{profile.name:22} first answer {statistics.median(times):5.2f} s"
                    f" (worst {max(times):5.2f}; target ≤ {ANSWER_TARGET:.0f} s {ok_time})"
                    f"  page weight {weight / 1024:5.1f} KB (target ≤ 100 KB {ok_weight})"
                )
            await browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
