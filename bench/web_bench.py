"""Web chat benchmark: the project's web chat against a bare aiohttp websocket chat, one run.

Each server runs as its own process; the clients run in this one, each on a websocket of its
own, sending free-text questions (the FAQ's labelled paraphrases; `--texts commands` sends
/help, /menu, /contact, /news instead). A message's latency is from its send time to the
frame that completes its answer. Stacks:

- `project`: `bangdaiban web` (the real aiohttp channel and core; RUN_WORKER=false, as in
  production where `bangdaiban worker` delivers), on SQLite + memory or with --postgres on
  PostgreSQL + Redis;
- `bare`: bench/bare_web_chat.py — per message a Redis GET and SET of the chat's state, one
  INSERT of its history rows into PostgreSQL, one frame back (needs --postgres).

Two loads, each on fresh clients (new chats) against the same server process:

- closed loop (the capacity figure): all N clients at once, each sending its next message as
  soon as the previous one is answered; messages/s is the server's ceiling and latency is
  mostly the queue (about N ÷ throughput), not the work.
- open loop (`--rate R`): the N clients together offer R messages/s as one Poisson stream,
  each send given to a random client (every client gets M), sent at its time whether or not
  that client's previous answer has come. Latency counts from the scheduled send time, so a
  server that falls behind shows it (no coordinated omission).

Prints, per stack and load: messages/s, p50/p99 latency, the server's CPU per message (user +
system, from /proc), its RSS and peak RSS, memory per connection; then the project's figures
÷ the bare chat's of the same round, and the machine's load average before and after. Rounds
alternate the stacks' order (a shared machine drifts).

    .venv/bin/python bench/web_bench.py --postgres [--clients 200] [--messages 10]
        [--rate 300] [--loads closed open] [--stacks project bare] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from outbox_bench import cpu_seconds, peak_rss_mb  # noqa: E402

from bench_common import SERVER, drop_database, fresh_database  # noqa: E402

COMMANDS = ["/help", "/menu", "/contact", "/news"]  # templates, applicant and roster reads
QUESTIONS_FILE = ROOT / "tests" / "data" / "faq_paraphrases.yaml"
DONE = ("idle", "answer")  # the frame that completes an answer (old page protocol: "idle")
TARGETS = {"ratio": 0.5, "cpu_ms": 1.0, "p99_ms": 150.0, "peak_mb": 200.0}


def texts(kind: str) -> list[str]:
    if kind == "commands":
        return COMMANDS
    labelled = yaml.safe_load(QUESTIONS_FILE.read_text(encoding="utf-8"))["labelled"]
    return [str(entry["q"]) for entry in labelled]


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
    def __init__(self, url: str, said: list[str], offset: int) -> None:
        self.url, self.said, self.offset = url, said, offset
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.latencies: list[float] = []
        self.frames = 0  # frames received for the answers (history not counted)
        self.late = 0.0  # how far behind its schedule this client sent (client-side lag)

    def text(self, index: int) -> str:
        return self.said[(self.offset + index) % len(self.said)]

    async def connect(self) -> None:
        async with self.session.get(self.url) as response:
            await response.read()
        origin = self.url.split("/", 3)
        self.ws = await self.session.ws_connect(
            f"{self.url}ws", origin=f"{origin[0]}//{origin[2]}", max_msg_size=0
        )
        await self.ws.receive_json()  # history

    async def answered(self) -> None:
        assert self.ws is not None
        while True:
            self.frames += 1
            if (await self.ws.receive_json())["type"] in DONE:
                return

    async def chat(self, count: int, start: asyncio.Event) -> None:
        assert self.ws is not None
        await start.wait()
        for index in range(count):
            sent = time.perf_counter()
            await self.ws.send_json({"type": "text", "text": self.text(index)})
            await self.answered()
            self.latencies.append(time.perf_counter() - sent)

    async def paced(self, schedule: list[float]) -> None:
        """Open loop: send at the scheduled times, not waiting for the answers."""
        assert self.ws is not None
        ws = self.ws
        scheduled: deque[float] = deque()

        async def receive() -> None:
            for _ in schedule:
                await self.answered()
                self.latencies.append(time.perf_counter() - scheduled.popleft())

        receiver = asyncio.create_task(receive())
        for index, at in enumerate(schedule):
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled.append(at)
            await ws.send_json({"type": "text", "text": self.text(index)})
            self.late = max(self.late, time.perf_counter() - at)
        await receiver

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()


class Server:
    """One stack's server process, started once and measured under each load."""

    def __init__(self, stack: str, args: argparse.Namespace, workdir: Path) -> None:
        self.stack = stack
        self.port = args.port + (1 if stack == "bare" else 0)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.profile = workdir / f"{stack}.prof"
        env = {
            **os.environ,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(self.port),
            "WEB_SECRET": "bench",
            "WEB_IP_LIMIT": "100000000",
            "FLOOD_LIMIT": "10000",
            "OPEN_QUESTIONS_LIMIT": "1000",  # every routed question is handed to a person
            "RUN_WORKER": "false",
            "LOG_LEVEL": "WARNING",
            "FILES_DIR": str(workdir / "files"),
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        }
        if args.postgres:
            env.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, DB_POOL_SIZE="20")
        if stack == "bare":
            plain = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
            command = [sys.executable, str(ROOT / "bench" / "bare_web_chat.py")]
            command += ["--port", str(self.port), "--database-url", plain]
            command += ["--redis-url", args.redis_url]
        else:
            command = [str(Path(sys.executable).parent / "bangdaiban"), "web"]
            if args.profile:
                command = [sys.executable, "-m", "cProfile", "-o", str(self.profile), *command]
        self.proc = subprocess.Popen(command, env=env, cwd=workdir)

    async def start(self) -> None:
        await wait_ready(self.url, self.proc)
        await asyncio.sleep(1)

    def stop(self) -> float:
        """Stop the server; its peak RSS in MB."""
        peak = peak_rss_mb(self.proc.pid) if self.proc.poll() is None else float("nan")
        self.proc.send_signal(signal.SIGINT if self.stack == "project" else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return peak


async def measure(
    server: Server, load: str, args: argparse.Namespace, said: list[str], first: int
) -> dict[str, Any]:
    """One load on fresh clients (new chats); the server's figures for it."""
    clients = [Client(server.url, said, first + n * args.messages) for n in range(args.clients)]
    pid = server.proc.pid
    try:
        before = rss_kib(pid)
        connecting = asyncio.Semaphore(50)

        async def connect(client: Client) -> None:
            async with connecting:
                await client.connect()

        await asyncio.gather(*(connect(c) for c in clients))
        await asyncio.sleep(0.5)
        connected = rss_kib(pid)
        cpu = cpu_seconds(pid)
        began = time.perf_counter()
        sending = 0.0
        if load == "open":
            schedules = open_loop(args.clients, args.messages, args.rate, began + 0.5)
            await asyncio.gather(*(c.paced(t) for c, t in zip(clients, schedules, strict=True)))
            sending = max(t[-1] for t in schedules) - began - 0.5
            began += 0.5
        else:
            start = asyncio.Event()
            tasks = [asyncio.create_task(c.chat(args.messages, start)) for c in clients]
            start.set()
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(pid) - cpu
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    latencies = sorted(x for c in clients for x in c.latencies)
    total = len(latencies)
    return {
        "stack": server.stack,
        "load": load,
        "messages": total,
        "rate": total / elapsed,
        "offered": total / sending if sending else 0.0,
        "late_ms": max(c.late for c in clients) * 1000,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(total - 1, int(total * 0.99))] * 1000,
        "cpu_ms": cpu / total * 1000,
        "frames": sum(c.frames for c in clients) / total,
        "rss_mb": connected / 1024,
        "kib_per_connection": (connected - before) / args.clients,
        "peak_mb": peak_rss_mb(pid),
    }


def describe(row: dict[str, Any], args: argparse.Namespace) -> str:
    design = (
        f"open loop, {args.rate:g}/s offered ({row['offered']:.0f}/s sent, at most "
        f"{row['late_ms']:.0f} ms behind)"
        if row["load"] == "open"
        else "closed loop"
    )
    return (
        f"{row['stack']:8} {row['load']:6} {row['rate']:8.0f} msg/s  p50 {row['p50']:7.0f} ms  "
        f"p99 {row['p99']:7.0f} ms  CPU {row['cpu_ms']:5.2f} ms/msg  "
        f"{row['frames']:.1f} frames/answer  RSS {row['rss_mb']:4.0f} MB "
        f"({row['kib_per_connection']:.0f} KiB/conn), peak {row['peak_mb']:.0f} MB  [{design}]"
    )


def ratios(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The project ÷ the bare chat of the same round and load: rate, CPU per message."""
    per_round = len(args.stacks) * len(args.loads)
    per_load: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(rows), per_round):
        group = rows[start : start + per_round]
        for load in args.loads:
            mine = next(r for r in group if r["stack"] == "project" and r["load"] == load)
            bare = next(r for r in group if r["stack"] == "bare" and r["load"] == load)
            per_load.setdefault(load, []).append(
                (mine["rate"] / bare["rate"], mine["cpu_ms"] / bare["cpu_ms"])
            )
    for load, pairs in per_load.items():
        print(
            f"project ÷ bare, {load} loop, {len(pairs)} round(s): messages/s "
            f"{_spread([p[0] for p in pairs])} (target ≥ {TARGETS['ratio']}), "
            f"CPU per message {_spread([p[1] for p in pairs])}"
        )


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def verdicts(rows: list[dict[str, Any]]) -> None:
    mine = [row for row in rows if row["stack"] == "project"]
    closed = [row for row in mine if row["load"] == "closed"]
    opened = [row for row in mine if row["load"] == "open"]
    if closed:
        cpu = statistics.median(row["cpu_ms"] for row in closed)
        print(f"project CPU per message, closed loop: median {cpu:.2f} ms (target ≤ 1.0)")
    if opened:
        p99 = statistics.median(row["p99"] for row in opened)
        print(f"project p99, open loop: median {p99:.0f} ms (target ≤ 150)")
    if mine:
        peak = max(row["peak_mb"] for row in mine)
        print(f"project peak RSS: {peak:.0f} MB (target ≤ 200)")


async def run(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it
    if "bare" in args.stacks and not args.postgres:
        raise SystemExit("the bare chat runs on PostgreSQL + Redis: add --postgres")
    workdir = Path(tempfile.mkdtemp(prefix="bdb-web-bench-"))
    if args.postgres:
        await fresh_database(args.database_url)
    said = texts(args.texts)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    servers = {stack: Server(stack, args, workdir) for stack in args.stacks}
    rows: list[dict[str, Any]] = []
    peaks: dict[str, float] = {}
    try:
        await asyncio.gather(*(server.start() for server in servers.values()))
        first = 0
        for round_ in range(args.rounds):
            order = args.stacks if round_ % 2 == 0 else args.stacks[::-1]
            for stack in order:
                for load in args.loads:
                    row = await measure(servers[stack], load, args, said, first)
                    first += args.clients * args.messages
                    rows.append(row)
                    print(describe(row, args), flush=True)
    finally:
        for stack, server in servers.items():
            peaks[stack] = server.stop()
        if args.postgres:
            await drop_database(args.database_url)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    backend = "PostgreSQL + Redis" if args.postgres else "SQLite + memory"
    texts_kind = "free-text questions" if args.texts == "questions" else "commands"
    print(
        f"\nweb chat, {args.clients} websocket clients × {args.messages} {texts_kind} per load "
        f"({backend}); peak RSS: "
        + ", ".join(f"{stack} {peak:.0f} MB" for stack, peak in peaks.items())
    )
    ordered = sorted(rows, key=lambda row: (row["stack"], row["load"]))
    for row in ordered:
        print("  " + describe(row, args))
    if "bare" in args.stacks and "project" in args.stacks:
        ratios(rows, args)
    verdicts(rows)
    if args.profile and "project" in servers:
        stats = pstats.Stats(str(servers["project"].profile))
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="per client and load")
    parser.add_argument(
        "--rate",
        type=float,
        default=300,
        help="messages/s offered by all clients together in the open loop; 0: closed loop only",
    )
    parser.add_argument("--loads", nargs="+", choices=["closed", "open"], default=None)
    parser.add_argument("--stacks", nargs="+", choices=["project", "bare"], default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--texts", choices=["questions", "commands"], default="questions")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--database-url", default=f"{SERVER}/bdb_web_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--profile", action="store_true", help="the project under cProfile")
    args = parser.parse_args()
    if args.loads is None:
        args.loads = ["closed", "open"] if args.rate > 0 else ["closed"]
    if args.stacks is None:
        args.stacks = ["project", "bare"] if args.postgres else ["project"]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
