"""Telegram end-to-end benchmark: N simulated users each file a full application.

The Bot API stub and the simulated users run in a separate process; the bot (the real
aiogram adapter on long polling, the core, the outbox worker) runs in this one on
PostgreSQL + Redis. Prints updates/s, update→reply latency (p50/p99, measured by the stub),
and the bot process's peak RSS.

    .venv/bin/python bench/telegram_bench.py --users 1000 [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import multiprocessing as mp
import pstats
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "bot")]

from botapi_stub import TOKEN, BotApiStub, Call  # noqa: E402
from support import GOOD_ANSWERS  # noqa: E402

SHOWN = {"sendMessage", "editMessageText", "sendDocument"}
SCRIPT: list[tuple[str, str]] = [
    ("say", "/start"),
    ("say", "/apply"),
    ("press", "一般项目"),
    ("press", "是，已在新区立项"),
    ("press", "不是房地产"),
    *[
        ("say", GOOD_ANSWERS[name])
        for name in (
            "company",
            "credit_code",
            "project_name",
            "project_code",
            "contact_name",
            "contact_phone",
            "project_summary",
        )
    ],
    ("press", "施工许可"),
    ("press", "完成"),
    ("press", "提交"),
]


# -- the stub process: Bot API + simulated users --------------------------------------------


@dataclass
class SimUser:
    chat_id: int
    waiting: asyncio.Future[Call] | None = None
    buttons: list[tuple[int, str, str]] = field(default_factory=list)  # message, label, data


class Crowd:
    def __init__(self, stub: BotApiStub, users: int) -> None:
        self.stub = stub
        self.users = {900_000 + n: SimUser(900_000 + n) for n in range(users)}
        self.latencies: list[float] = []
        self.updates = 0
        self.failed = 0
        self.submitted = 0
        stub.listeners.append(self.on_call)

    def on_call(self, call: Call) -> None:
        if call.method not in SHOWN or call.status != 200:
            return
        user = self.users.get(int(call.chat_id or 0))
        if user is None:
            return
        if call.buttons:
            message_id = int(call.params["message_id"])
            user.buttons = [(message_id, b["text"], b["callback_data"]) for b in call.buttons]
        if user.waiting is not None and not user.waiting.done():
            user.waiting.set_result(call)

    async def run_user(self, user: SimUser) -> None:
        loop = asyncio.get_running_loop()
        for action, argument in SCRIPT:
            user.waiting = loop.create_future()
            started = time.monotonic()
            if action == "say":
                self.stub.user_says(user.chat_id, argument)
            else:
                found = [b for b in user.buttons if argument in b[1]]
                if not found:
                    self.failed += 1
                    return
                message_id, _, data = found[0]
                self.stub.user_presses(user.chat_id, message_id, data)
            self.updates += 1
            try:
                reply = await asyncio.wait_for(user.waiting, 60)
            except TimeoutError:
                self.failed += 1
                return
            self.latencies.append(time.monotonic() - started)
        if "BDB-" in reply.text:
            self.submitted += 1

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        await asyncio.gather(*(self.run_user(user) for user in self.users.values()))
        return {
            "seconds": time.monotonic() - started,
            "updates": self.updates,
            "latencies": self.latencies,
            "failed": self.failed,
            "submitted": self.submitted,
        }


def stub_process(conn: Connection, users: int) -> None:
    async def main() -> None:
        stub = BotApiStub(record=False)
        documents = 0

        def count_documents(call: Call) -> None:
            nonlocal documents
            if call.method == "sendDocument" and call.status == 200:
                documents += 1

        stub.listeners.append(count_documents)
        conn.send(await stub.start())
        crowd = Crowd(stub, users)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
        result = await crowd.run()
        with contextlib.suppress(TimeoutError):  # the forms follow through the outbox worker
            await stub.wait_until(lambda: documents >= crowd.submitted, 60)
        result["documents"] = documents
        conn.send(result)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "bye"
        await stub.close()

    asyncio.run(main())


# -- the bot process ------------------------------------------------------------------------


async def prepare(database_url: str, redis_url: str) -> None:
    from redis.asyncio import Redis

    from bench_common import fresh_database

    await fresh_database(database_url)  # the benchmark's own database: start empty
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()


async def run_bot(
    args: argparse.Namespace, conn: Connection, base_url: str, profiler: cProfile.Profile | None
) -> dict[str, Any]:
    from bot.app import build_app
    from bot.channels.telegram import running
    from bot.config import load_settings

    settings = load_settings(
        database_url=args.database_url,
        redis_url=args.redis_url,
        telegram_bot_token=TOKEN,
        telegram_api_url=base_url,
        files_dir=Path(args.files_dir),
        db_pool_size=args.db_pool,
        redis_max_connections=args.redis_pool,
        log_level="WARNING",
    )
    app = await build_app(settings)
    try:
        async with running(settings, app, run_worker=not args.no_worker):
            if profiler is not None:  # only the measured part, not imports and start-up
                profiler.enable()
            conn.send("go")
            result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
                None, conn.recv
            )
            if profiler is not None:
                profiler.disable()
    finally:
        await app.close()
    return result


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    latencies = sorted(result["latencies"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    rate = result["updates"] / result["seconds"]
    print(f"users                 {args.users}")
    print(f"updates               {result['updates']} in {result['seconds']:.1f} s")
    print(f"updates/s             {rate:.0f}   (target ≥ 500)")
    print(f"latency p50           {p50:.1f} ms")
    print(f"latency p99           {p99:.1f} ms   (target < 50)")
    print(f"latency max           {latencies[-1] * 1000 if latencies else 0:.1f} ms")
    print(f"peak RSS (bot)        {peak_mb:.0f} MB   (target < 300)")
    print(f"RSS at end (bot)      {current_rss_mb():.0f} MB")
    print(f"cases submitted       {result['submitted']}  failed users {result['failed']}")
    print(f"forms delivered       {result['documents']} (outbox worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--files-dir", default="/tmp/bdb-bench-files")
    parser.add_argument("--db-pool", type=int, default=10)
    parser.add_argument("--redis-pool", type=int, default=50)
    parser.add_argument("--no-worker", action="store_true", help="no outbox worker in the bot")
    parser.add_argument("--profile", action="store_true", help="cProfile the bot process")
    parser.add_argument("--sort", default="tottime", help="profile order: tottime, cumulative")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    asyncio.run(prepare(args.database_url, args.redis_url))
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=stub_process, args=(child, args.users), daemon=True)
    process.start()
    base_url = parent.recv()
    profiler = cProfile.Profile() if args.profile else None
    result = asyncio.run(run_bot(args, parent, base_url, profiler))
    parent.send("bye")
    process.join(10)
    report(args, result)
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(args.sort)
        stats.print_stats(40)
        print(out.getvalue())


if __name__ == "__main__":
    main()
