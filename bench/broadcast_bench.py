"""Broadcast benchmark: one announcement to N subscribers against Telegram's flood limits.

The Bot API stub runs in its own process and enforces 30 messages a second in total and one
a second per chat, answering 429 beyond them. The workers are real `python -m bot worker`
processes (two by default, sharing the Redis send limiter) at SEND_RATE_PER_SECOND=30.
Prints the time to queue the announcement, the time to deliver it, the sustained rate and the
429s the stub had to answer.

    .venv/bin/python bench/broadcast_bench.py [--count 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from outbox_bench import (
    CHANNEL,
    StubProcess,
    flush_redis,
    fresh_database,
    until,
    warm_up,
    worker_processes,
    worker_tokens,
)


async def subscribe(database_url: str, count: int) -> int:
    """`count` subscribed applicants; returns the id of the admin who broadcasts."""
    from storage import roster
    from storage.db import Database
    from storage.models import Applicant

    db = Database(database_url)
    async with db.transaction() as session:
        session.add_all(
            Applicant(channel=CHANNEL, chat_id=str(2_000_000 + n), subscribed=True, topics=[])
            for n in range(count)
        )
        admin = await roster.staff_by_name(session, "陈晨")
        assert admin is not None, "the seeded roster has the admin 陈晨"
        admin_id = admin.id
    await db.dispose()
    return admin_id


async def queue_announcement(database_url: str, admin_id: int) -> tuple[int, float]:
    from handlers.announcements import queue
    from storage.db import Database

    db = Database(database_url)
    started = time.perf_counter()
    queued = await queue(
        db, "新区产业扶持政策解读", "即日起受理申报。", "subscribers", [], admin_id
    )
    seconds = time.perf_counter() - started
    await db.dispose()
    assert queued is not None
    return queued[1], seconds


async def run(args: argparse.Namespace) -> dict[str, Any]:
    database_url = await fresh_database(args.database)
    await flush_redis(args.redis_url)
    admin_id = await subscribe(database_url, args.count)
    tokens = worker_tokens(args.workers)
    stub = StubProcess(tokens, flood=True)
    try:
        async with worker_processes(tokens, database_url, args.redis_url, stub.base_url, args.rate):
            await warm_up(stub, database_url, tokens)
            warm = await stub.stats()
            recipients, queue_seconds = await queue_announcement(database_url, admin_id)
            started = time.monotonic()
            last_print = started

            async def all_delivered() -> bool:
                nonlocal last_print
                stats = await stub.stats()
                if time.monotonic() - last_print >= 30:
                    last_print = time.monotonic()
                    print(
                        f"  {time.monotonic() - started:5.0f} s  delivered {stats['delivered']}"
                        f"  429s {stats['flood_429s']}",
                        flush=True,
                    )
                return bool(stats["delivered"] >= recipients)

            await until(all_delivered, args.count / 20 + 120, every=1.0)
            await asyncio.sleep(1.0)  # anything delivered twice would show by now
            stats = await stub.stats()
    finally:
        stub.close()
    stats["recipients"] = recipients
    stats["queue_seconds"] = queue_seconds
    stats["end_to_end"] = stats["last"] - started
    stats["flood_429s"] -= warm["flood_429s"]
    return stats


def report(args: argparse.Namespace, stats: dict[str, Any]) -> None:
    span = stats["last"] - stats["first"]
    rate = stats["delivered"] / span if span > 0 else float("nan")
    attempts = stats["delivered"] + stats["flood_429s"]
    share = 100 * stats["flood_429s"] / attempts if attempts else 0.0
    print(f"workers                    {args.workers} processes, send rate {args.rate}/s")
    print(f"queue {stats['recipients']} recipients      {stats['queue_seconds']:.2f} s")
    print(f"delivered                  {stats['delivered']}  duplicates {stats['duplicates']}")
    print(f"first → last delivery      {span:.1f} s")
    print(f"queued → last delivery     {stats['end_to_end']:.1f} s")
    print(f"sustained rate             {rate:.1f} msg/s   (target ≥ 28)")
    print(f"429 answers                {stats['flood_429s']} = {share:.2f}%   (target < 1%)")
    print(f"per worker                 {sorted(stats['by_token'].values(), reverse=True)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=30.0, help="SEND_RATE_PER_SECOND")
    parser.add_argument("--database", default="bdb_bench_outbox")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    report(args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
