"""Outbox delivery benchmark: notifications/s from the outbox to a Bot API stub.

The stub (no flood limits) runs in its own process; the workers are real
`python -m bot worker` processes on PostgreSQL (a throwaway database, dropped at the end) +
Redis (db 14, the benchmarks' own), with the global send rate disabled
(SEND_RATE_PER_SECOND=0: the stub is local, so the figure is the worker's own ceiling; the
per-chat limit stays on, every notification goes to a different chat). Prints the time to
enqueue the notifications, and deliveries/s with 1 and 2 worker processes, measured by the
stub from the first to the last delivery.

    .venv/bin/python bench/outbox_bench.py [--count 10000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "bot")]

from botapi_stub import TOKEN, BotApiStub, Call  # noqa: E402

SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
WARM_UP = "warm-up"
CHANNEL = "telegram"  # bot.channels.telegram.CHANNEL, without importing aiogram here


# -- the stub process -----------------------------------------------------------------------


@dataclass
class Deliveries:
    """What the stub saw, counted as the calls are answered."""

    by_token: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    chats: Counter[str] = field(default_factory=Counter)  # measured notifications per chat
    first: float = 0.0
    last: float = 0.0
    progress: list[tuple[float, int]] = field(default_factory=list)  # (time, delivered)

    def on_call(self, call: Call) -> None:
        if call.method != "sendMessage":
            return
        self.statuses[call.status] += 1
        if call.status != 200:
            return
        self.by_token[call.token] += 1
        if call.text.startswith(WARM_UP):
            return
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.chats[call.chat_id] += 1

    def snapshot(self, stub: BotApiStub) -> dict[str, Any]:
        delivered = sum(self.chats.values())
        return {
            "by_token": dict(self.by_token),
            "statuses": dict(self.statuses),
            "delivered": delivered,
            "duplicates": delivered - len(self.chats),
            "first": self.first,
            "last": self.last,
            "now": time.monotonic(),
            "flood_429s": stub.flood_429s,
        }


def stub_process(conn: Connection, tokens: list[str], flood: bool) -> None:
    """Serve the Bot API until told "bye"; answer "stats" with a snapshot."""

    async def main() -> None:
        stub = BotApiStub(record=False)
        for token in tokens:
            stub.add_token(token)
        if flood:
            stub.limit_flood(per_second=30, chat_interval=1.0)
        deliveries = Deliveries()
        stub.listeners.append(deliveries.on_call)
        conn.send(await stub.start())
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) != "bye":
            if command == "stats":
                conn.send(deliveries.snapshot(stub))
        await stub.close()

    asyncio.run(main())


class StubProcess:
    def __init__(self, tokens: list[str], flood: bool) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=stub_process, args=(child, tokens, flood), daemon=True)
        self.process.start()
        self.base_url: str = self.conn.recv()

    async def stats(self) -> dict[str, Any]:
        self.conn.send("stats")
        result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            None, self.conn.recv
        )
        return result

    def close(self) -> None:
        self.conn.send("bye")
        self.process.join(10)


# -- database, Redis, worker processes ------------------------------------------------------


async def fresh_database(name: str) -> str:
    """Drop and create `name` (from the `postgres` database), migrated and seeded."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.db import Database
    from storage.seed import seed_all

    admin = create_async_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = f"{SERVER_URL}/{name}"
    db = Database(url)
    await db.upgrade()
    async with db.transaction() as session:
        await seed_all(session)
    await db.dispose()
    return url


async def drop_database(name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()


def worker_tokens(count: int) -> list[str]:
    return [f"{TOKEN.split(':')[0]}:BENCH-worker-{n}" for n in range(count)]


@contextlib.asynccontextmanager
async def worker_processes(
    tokens: list[str], database_url: str, redis_url: str, api_url: str, rate: float
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`python -m bot worker` per token; SIGTERM (a graceful stop) at the end."""
    processes = []
    for token in tokens:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_URL": api_url,
            "SEND_RATE_PER_SECOND": str(rate),
            "FILES_DIR": "/tmp/bdb-bench-files",
            "LOG_LEVEL": "WARNING",
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "worker", cwd=ROOT, env=env
            )
        )
    try:
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size of a running process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def enqueue_notifications(database_url: str, chats: list[str], prefix: str) -> float:
    """Enqueue one notification per chat in one transaction; returns the seconds it took."""
    from storage import outbox
    from storage.db import Database
    from storage.outbox import Recipient

    db = Database(database_url)
    started = time.perf_counter()
    async with db.transaction() as session:
        for chat in chats:
            text = f"{prefix} 您的申请已受理，案件编号 BDB-2026-{int(chat) % 1_000_000:06d}。"
            outbox.enqueue(session, Recipient(CHANNEL, chat), text, key=f"{prefix}:{chat}")
    seconds = time.perf_counter() - started
    await db.dispose()
    return seconds


async def until(check: Callable[[], Awaitable[bool]], seconds: float, every: float = 0.5) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(every)


async def warm_up(stub: StubProcess, database_url: str, tokens: list[str]) -> None:
    """Trickle notifications until every worker process has delivered one (all started)."""
    round_ = 0

    async def everyone_delivered() -> bool:
        nonlocal round_
        stats = await stub.stats()
        if all(stats["by_token"].get(token) for token in tokens):
            return True
        round_ += 1
        chats = [str(5_000_000 + round_ * 100 + n) for n in range(len(tokens) * 4)]
        await enqueue_notifications(database_url, chats, f"{WARM_UP}-{round_}")
        return False

    await until(everyone_delivered, 120, every=0.5)


# -- the benchmark --------------------------------------------------------------------------


async def run(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    database_url = await fresh_database(args.database)
    await flush_redis(args.redis_url)
    tokens = worker_tokens(workers)
    stub = StubProcess(tokens, flood=False)
    try:
        async with worker_processes(
            tokens, database_url, args.redis_url, stub.base_url, 0
        ) as processes:
            await warm_up(stub, database_url, tokens)
            chats = [str(1_000_000 + n) for n in range(args.count)]
            cpu_before = sum(cpu_seconds(process.pid) for process in processes)
            enqueue_seconds = await enqueue_notifications(database_url, chats, "bench")
            committed = time.monotonic()

            async def all_delivered() -> bool:
                return bool((await stub.stats())["delivered"] >= args.count)

            await until(all_delivered, args.timeout, every=0.2)
            await asyncio.sleep(0.5)  # anything delivered twice would show by now
            stats = await stub.stats()
            stats["worker_peak_mb"] = max(peak_rss_mb(process.pid) for process in processes)
            stats["worker_cpu"] = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
    finally:
        stub.close()
        await drop_database(args.database)
    stats["enqueue_seconds"] = enqueue_seconds
    stats["end_to_end"] = stats["last"] - committed  # both monotonic, same host
    return stats


def report(args: argparse.Namespace, workers: int, stats: dict[str, Any]) -> None:
    span = stats["last"] - stats["first"]
    rate = stats["delivered"] / span if span > 0 else float("nan")
    print(f"-- {workers} worker process{'es' if workers > 1 else ''}")
    print(
        f"enqueue {args.count} notifications   {stats['enqueue_seconds']:.2f} s (one transaction)"
    )
    print(f"delivered                  {stats['delivered']}  duplicates {stats['duplicates']}")
    print(f"first → last delivery      {span:.2f} s")
    print(f"deliveries/s               {rate:.0f}   (target ≥ 1500 with one worker)")
    print(f"commit → last delivery     {stats['end_to_end']:.2f} s (includes the ≤1 s idle poll)")
    print(f"per worker                 {sorted(stats['by_token'].values(), reverse=True)}")
    print(f"worker peak RSS            {stats['worker_peak_mb']:.0f} MB (the largest)")
    cpu = stats["worker_cpu"] / max(stats["delivered"], 1) * 1e6
    print(f"worker CPU per delivery    {cpu:.0f} µs (all workers; ≈ 1 s ÷ this on a free core)")
    print(f"stub answers               {stats['statuses']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--database", default="bdb_bench_outbox")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    for workers in args.workers:
        report(args, workers, asyncio.run(run(args, workers)))


if __name__ == "__main__":
    main()
