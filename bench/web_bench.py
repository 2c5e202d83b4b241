"""Web chat benchmark: N concurrent websocket clients, each sending M messages in turn.

The web server (`bangdaiban web`, the real aiohttp channel and core) runs as its own process,
on the embedded defaults (SQLite + memory) or with --postgres on PostgreSQL + Redis; the
clients run in this one. Each message goes through the core router and is stored in the
chat's history; a message's latency is from sending it to the server's "idle" marker after
the last reply. Prints messages/s, p50/p99 latency, and the server's memory per connection
(RSS with all clients connected minus RSS before, divided by N).

    .venv/bin/python bench/web_bench.py --clients 1000 --messages 10 [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_common import SERVER, fresh_database  # noqa: E402

MESSAGES = ["/help", "/menu", "/contact", "/news"]  # templates, applicant and roster reads


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) if match else 0


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit("the web server exited")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the web server did not start")


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.latencies: list[float] = []

    async def connect(self) -> None:
        async with self.session.get(self.url) as response:
            await response.read()
        origin = self.url.split("/", 3)
        self.ws = await self.session.ws_connect(
            f"{self.url}ws", origin=f"{origin[0]}//{origin[2]}", max_msg_size=0
        )
        await self.ws.receive_json()  # history

    async def chat(self, count: int, start: asyncio.Event) -> None:
        assert self.ws is not None
        await start.wait()
        for index in range(count):
            sent = time.perf_counter()
            await self.ws.send_json({"type": "text", "text": MESSAGES[index % len(MESSAGES)]})
            while (await self.ws.receive_json())["type"] != "idle":
                pass
            self.latencies.append(time.perf_counter() - sent)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()


async def run(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    workdir = Path(tempfile.mkdtemp(prefix="bdb-web-bench-"))
    env = {
        **os.environ,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(args.port),
        "WEB_SECRET": "bench",
        "WEB_IP_LIMIT": "100000000",
        "FLOOD_LIMIT": "1000000",
        "LOG_LEVEL": "WARNING",
        "FILES_DIR": str(workdir / "files"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
    }
    if args.postgres:
        url = f"{SERVER}/bdb_web_bench"
        await fresh_database(url)
        env.update(DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:6379/14", DB_POOL_SIZE="20")
    bangdaiban = str(Path(sys.executable).parent / "bangdaiban")
    command = [bangdaiban, "web"]
    if args.profile:
        command = [sys.executable, "-m", "cProfile", "-o", str(workdir / "web.prof"), *command]
    proc = subprocess.Popen(command, env=env, cwd=workdir)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{args.port}/"
    clients = [Client(url) for _ in range(args.clients)]
    try:
        await wait_ready(url, proc)
        await asyncio.sleep(1)
        before = rss_kib(proc.pid)
        connecting = asyncio.Semaphore(50)

        async def connect(client: Client) -> None:
            async with connecting:
                await client.connect()

        await asyncio.gather(*(connect(c) for c in clients))
        await asyncio.sleep(1)
        connected = rss_kib(proc.pid)
        start = asyncio.Event()
        tasks = [asyncio.create_task(c.chat(args.messages, start)) for c in clients]
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        after = rss_kib(proc.pid)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        proc.terminate()
        proc.wait(timeout=30)
    if args.profile:
        stats = pstats.Stats(str(workdir / "web.prof"))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    latencies = sorted(x for c in clients for x in c.latencies)
    total = len(latencies)
    p99 = latencies[min(total - 1, int(total * 0.99))]
    backend = "PostgreSQL + Redis" if args.postgres else "SQLite + memory"
    print(f"web chat, {args.clients} websocket clients x {args.messages} messages ({backend})")
    print(f"  {total} messages in {elapsed:.1f} s = {total / elapsed:.0f} messages/s")
    print(
        f"  send→complete answer: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms"
    )
    per_connection = (connected - before) / args.clients
    print(
        f"  server RSS: {before / 1024:.0f} MB idle, {connected / 1024:.0f} MB with "
        f"{args.clients} connections ({per_connection:.0f} KiB per connection), "
        f"{after / 1024:.0f} MB after the run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--profile", action="store_true", help="the server under cProfile")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
