"""Web chat benchmark: N concurrent websocket clients, each sending M messages.

The web server (`bangdaiban web`, the real aiohttp channel and core) runs as its own process,
on the embedded defaults (SQLite + memory) or with --postgres on PostgreSQL + Redis; the
clients run in this one. Each message goes through the core router and is stored in the
chat's history; a message's latency is from its send time to the server's "idle" marker
after the last reply. Two designs:

- open loop (`--rate R`, the default 500): all N clients stay connected and together offer
  R messages/s: the N×M sends form one Poisson stream of rate R, each send given to a random
  client (every client gets M), and a client sends at its times whether or not its previous
  answer has come. Latency is counted from the scheduled send time, so a server that falls
  behind shows it (no coordinated omission). This is what "N users chatting at R messages/s"
  means; the answered rate equals R only if the server keeps up.
- closed loop (`--rate 0`, the capacity figure): every client sends its next message as
  soon as the previous one is answered, all N at once; messages/s is the server's ceiling
  and latency is then mostly the queue (about N ÷ throughput), not the work.

Prints messages/s, p50/p99 latency, and the server's memory per connection (RSS with all
clients connected minus RSS before, divided by N).

    .venv/bin/python bench/web_bench.py --clients 1000 --messages 10 [--rate 500] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_common import SERVER, drop_database, fresh_database  # noqa: E402

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


def open_loop(clients: int, messages: int, rate: float, start: float) -> list[list[float]]:
    """Each client's send times: clients × messages sends as one Poisson stream of `rate`
    per second from `start`, each send given to a random client (every client gets
    `messages`), so a client's own sends come at random moments, sometimes close together."""
    rng = random.Random(1)
    owners = [n for n in range(clients) for _ in range(messages)]
    rng.shuffle(owners)
    schedules: list[list[float]] = [[] for _ in range(clients)]
    at = start
    for owner in owners:
        at += rng.expovariate(rate)
        schedules[owner].append(at)
    return schedules


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.latencies: list[float] = []
        self.late = 0.0  # how far behind its schedule this client sent (client-side lag)

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

    async def paced(self, schedule: list[float]) -> None:
        """Open loop: send at the scheduled times, not waiting for the answers."""
        assert self.ws is not None
        ws = self.ws
        scheduled: deque[float] = deque()

        async def receive() -> None:
            for _ in schedule:
                while (await ws.receive_json())["type"] != "idle":
                    pass
                self.latencies.append(time.perf_counter() - scheduled.popleft())

        receiver = asyncio.create_task(receive())
        for index, at in enumerate(schedule):
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled.append(at)
            await ws.send_json({"type": "text", "text": MESSAGES[index % len(MESSAGES)]})
            self.late = max(self.late, time.perf_counter() - at)
        await receiver

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
        "FLOOD_LIMIT": "10000",
        "LOG_LEVEL": "WARNING",
        "FILES_DIR": str(workdir / "files"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
    }
    url_db = f"{SERVER}/bdb_web_bench"
    if args.postgres:
        await fresh_database(url_db)
        env.update(DATABASE_URL=url_db, REDIS_URL="redis://127.0.0.1:6379/14", DB_POOL_SIZE="20")
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
        began = time.perf_counter()
        if args.rate > 0:
            schedules = open_loop(args.clients, args.messages, args.rate, began + 0.5)
            await asyncio.gather(*(c.paced(t) for c, t in zip(clients, schedules, strict=True)))
            sending = max(t[-1] for t in schedules) - began - 0.5
            began += 0.5
        else:
            start = asyncio.Event()
            tasks = [asyncio.create_task(c.chat(args.messages, start)) for c in clients]
            start.set()
            await asyncio.gather(*tasks)
            sending = 0.0
        elapsed = time.perf_counter() - began
        after = rss_kib(proc.pid)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        proc.terminate()
        proc.wait(timeout=30)
        if args.postgres:
            await drop_database(url_db)
    if args.profile:
        stats = pstats.Stats(str(workdir / "web.prof"))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    latencies = sorted(x for c in clients for x in c.latencies)
    total = len(latencies)
    p99 = latencies[min(total - 1, int(total * 0.99))]
    backend = "PostgreSQL + Redis" if args.postgres else "SQLite + memory"
    design = (
        f"open loop, {args.rate:g} messages/s offered"
        if args.rate > 0
        else "closed loop, all at once"
    )
    print(
        f"web chat, {args.clients} websocket clients x {args.messages} messages "
        f"({backend}; {design})"
    )
    print(f"  {total} messages in {elapsed:.1f} s = {total / elapsed:.0f} messages/s answered")
    if args.rate > 0:
        late = max(c.late for c in clients) * 1000
        print(
            f"  offered: {total} sends over {sending:.1f} s = {total / sending:.0f} messages/s "
            f"(Poisson arrivals); the clients sent at most {late:.0f} ms behind schedule"
        )
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
    parser.add_argument(
        "--rate",
        type=float,
        default=500,
        help="messages/s offered by all clients together (open loop); 0: closed loop, all at once",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--profile", action="store_true", help="the server under cProfile")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
