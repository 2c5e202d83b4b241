"""Complete application dialogs through the core (no channel) on PostgreSQL + Redis.

    .venv/bin/python bench/application_bench.py [--dialogs 1000] [--concurrency 100]

Prints dialogs/second and p50/p99 latency per step. Uses a throwaway database `bdb_bench`
and Redis db 13 on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_common import SERVER, fresh_database
from bot.app import build_app
from bot.config import load_settings
from storage.state import RedisStateStore
from support import GOOD_ANSWERS, Chat

DATABASE = f"{SERVER}/bdb_bench"
REDIS = "redis://127.0.0.1:6379/13"


async def one_dialog(chat: Chat, latencies: list[float]) -> None:
    async def step(action: str, value: str) -> None:
        started = time.perf_counter()
        if action == "say":
            await chat.say(value)
        else:
            await chat.press(value)
        latencies.append(time.perf_counter() - started)

    await step("say", "/apply")
    for action, value in (
        ("press", "一般项目"),
        ("press", "是，已在新区立项"),
        ("press", "不是房地产开发项目"),
        ("say", GOOD_ANSWERS["company"]),
        ("say", GOOD_ANSWERS["credit_code"]),
        ("say", GOOD_ANSWERS["project_name"]),
        ("say", GOOD_ANSWERS["project_code"]),
        ("say", GOOD_ANSWERS["contact_name"]),
        ("say", GOOD_ANSWERS["contact_phone"]),
        ("say", GOOD_ANSWERS["project_summary"]),
        ("press", "施工许可"),
        ("press", "完成"),
        ("press", "提交"),
    ):
        await step(action, value)
    assert "您的申请已提交" in chat.text, chat.text


async def main(dialogs: int, concurrency: int) -> None:
    await fresh_database(DATABASE)
    state = RedisStateStore(REDIS, prefix="bdbbench:", max_connections=50)
    await state.redis.flushdb()
    settings = load_settings(database_url=DATABASE, redis_url=REDIS, db_pool_size=20)
    app = await build_app(settings, state=state)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(dialogs):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await one_dialog(Chat(app.router, f"bench-{n}"), latencies)

    await asyncio.gather(*(worker() for _ in range(20)))  # warm up pools and caches
    latencies.clear()
    for n in range(dialogs):
        queue.put_nowait(dialogs + n)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await app.close()
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    print(f"dialogs: {dialogs} complete applications, {concurrency} concurrent users")
    print(f"steps: {len(latencies)} ({len(latencies) // dialogs} per dialog)")
    print(f"throughput: {dialogs / elapsed:.1f} dialogs/s, {len(latencies) / elapsed:.0f} steps/s")
    print(
        f"latency per step: p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialogs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.dialogs, args.concurrency))
