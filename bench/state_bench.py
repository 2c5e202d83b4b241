"""Conversation-state stores side by side: one update's open-load-save, as the router does it.

    .venv/bin/python bench/state_bench.py [--updates 2000] [--concurrency 100]

Prints updates/second and p50/p99 per update for the memory store and the SQLite file store
(the embedded default), one conversation at a time and `--concurrency` conversations at once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.state import MemoryStateStore, StateStore
from storage.state_sqlite import SqliteStateStore

# About the size of a half-filled application draft with its shown buttons.
DRAFT = {
    "draft": {"form": "application", "step": 6, "answers": {"company": "湖南星城智造科技有限公司"}},
    "shown": [["跳过", "f:c36S2ERuvY0zlwezvbVJaA:skip:credit_code"]] * 3,
}


async def updates(store: StateStore, count: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            async with store.conversation(f"bench:{n % 500}") as state:
                state.update(DRAFT)
                state["n"] = n
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return count / (time.perf_counter() - started), latencies


async def main(count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        stores: dict[str, StateStore] = {
            "memory": MemoryStateStore(),
            "sqlite": SqliteStateStore(Path(directory) / "state.db"),
        }
        for name, store in stores.items():
            for at_once in (1, concurrency):
                rate, latencies = await updates(store, count, at_once)
                cuts = statistics.quantiles(latencies, n=100)
                print(
                    f"{name:6} concurrency {at_once:4}: {rate:8.0f} updates/s"
                    f"  p50 {cuts[49] * 1000:6.2f} ms  p99 {cuts[98] * 1000:6.2f} ms"
                )
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.updates, arguments.concurrency))
