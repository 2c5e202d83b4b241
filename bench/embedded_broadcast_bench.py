"""Embedded broadcast: `bangdaiban run` plus `bangdaiban worker` on SQLite + memory.

Both processes are started as an operator would (RUN_WORKER left at its default, so `run`
delivers too), against the flood-limiting Bot API stub in its own process (30 messages a
second in total, one a second per chat, 429 beyond). One announcement goes to N
subscribers. Each process has its own bot token so the stub can tell who sent what, and its
own OPS_PORT, whose /healthz says when it is up. Prints copies per subscriber, the 429s and
which process delivered.

    .venv/bin/python bench/embedded_broadcast_bench.py [--count 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from broadcast_bench import queue_announcement, subscribe
from outbox_bench import ROOT, StubProcess, until, worker_tokens


async def prepare(database_url: str) -> None:
    from storage.db import Database
    from storage.seed import seed_all

    db = Database(database_url)
    await db.upgrade()
    async with db.transaction() as session:
        await seed_all(session)
    await db.dispose()


async def healthy(port: int) -> bool:
    from aiohttp import ClientSession

    try:
        async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    except OSError:
        return False


async def start(command: str, token: str, env: dict[str, str], port: int, log: Path) -> Any:
    env = {**env, "TELEGRAM_BOT_TOKEN": token, "OPS_PORT": str(port)}
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", command, cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bdb-embedded-"))
    database_url = f"sqlite+aiosqlite:///{folder / 'bangdaiban.db'}"
    await prepare(database_url)
    admin_id = await subscribe(database_url, args.count)
    tokens = worker_tokens(2)
    stub = StubProcess(tokens, flood=True)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "DATABASE_URL": database_url,
        "TELEGRAM_API_URL": stub.base_url,
        "FILES_DIR": str(folder / "files"),
        "LOG_LEVEL": "WARNING",
    }
    processes = []
    try:
        for n, command in enumerate(("run", "worker")):
            log = folder / f"{command}.log"
            processes.append(await start(command, tokens[n], env, args.port + n, log))

        async def both_up() -> bool:
            return all([await healthy(args.port), await healthy(args.port + 1)])

        await until(both_up, 120)
        recipients, _ = await queue_announcement(database_url, admin_id)
        started = time.monotonic()

        async def all_delivered() -> bool:
            return bool((await stub.stats())["delivered"] >= recipients)

        await until(all_delivered, args.count / 20 + 120, every=1.0)
        await asyncio.sleep(3.0)  # anything delivered twice would show by now
        stats = await stub.stats()
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()
        stub.close()
    stats["recipients"] = recipients
    stats["seconds"] = stats["last"] - started
    stats["tokens"] = tokens
    return stats


def report(stats: dict[str, Any]) -> None:
    attempts = stats["delivered"] + stats["flood_429s"]
    share = 100 * stats["flood_429s"] / attempts if attempts else 0.0
    by_process = {
        name: stats["by_token"].get(token, 0)
        for name, token in zip(("run", "worker"), stats["tokens"], strict=True)
    }
    print("processes                  bangdaiban run + bangdaiban worker, SQLite + memory")
    print(f"recipients                 {stats['recipients']}")
    print(f"delivered                  {stats['delivered']}  duplicates {stats['duplicates']}")
    print(f"queued → last delivery     {stats['seconds']:.1f} s")
    print(f"429 answers                {stats['flood_429s']} = {share:.2f}%   (target < 1%)")
    print(f"sends per process          {by_process}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--port", type=int, default=18931, help="OPS_PORT of run; worker +1")
    report(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
