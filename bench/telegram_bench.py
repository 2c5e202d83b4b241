"""Telegram benchmark: the project on each stack against a bare aiogram bot, in one run.

Simulated users (in the Bot API stub's process) each ask free-text questions one after the
other, waiting for each answer; every bot runs in a process of its own on long polling
against its own stub, with PostgreSQL + Redis:

- `aiogram`, `ptb`: `bangdaiban run` (TELEGRAM_LIBRARY=…) without the outbox worker;
- `bare`: the barest idiomatic aiogram 3 bot with RedisStorage (stores the text in the FSM
  data, answers it back).

Two loads per bot: a throughput run (all users at once, no pause: updates/s) and a latency
run (fewer users who pause between questions, as people do: update→reply p50/p99). Prints
updates/s, latencies (measured by the stub, from the update being queued to the reply
arriving), the bot process's peak RSS, the CPU per update of the bot and of what it shares the
machine with (the stub, Redis, PostgreSQL) and the ratios to the bare bot; then the outbox
worker (`bangdaiban worker`) against a stub without flood limits: deliveries/s and its
peak RSS (bench/outbox_bench.py).

    .venv/bin/python bench/telegram_bench.py [--users 500] [--latency-users 200]
        [--stacks aiogram ptb bare] [--rounds 2] [--no-outbox] [--profile aiogram]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import multiprocessing as mp
import os
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "bot")]

import yaml  # noqa: E402
from outbox_bench import cpu_seconds, peak_rss_mb  # noqa: E402

from botapi_stub import TOKEN, BotApiStub, Call  # noqa: E402

QUESTIONS_FILE = ROOT / "tests" / "data" / "faq_paraphrases.yaml"
PROJECT_STACKS = ("aiogram", "ptb")
STEP_TIMEOUT = 60.0


def questions() -> list[str]:
    labelled = yaml.safe_load(QUESTIONS_FILE.read_text(encoding="utf-8"))["labelled"]
    return [str(entry["q"]) for entry in labelled]


# -- the stub process: Bot API + simulated users --------------------------------------------


@dataclass
class Load:
    users: int
    per_user: int
    think: float  # seconds a user pauses before the next question (random 0.5×–1.5×)
    first_chat: int


class Crowd:
    def __init__(self, stub: BotApiStub, load: Load, asked: list[str]) -> None:
        self.stub, self.load, self.asked = stub, load, asked
        self.waiting: dict[int, asyncio.Future[Call]] = {}
        self.latencies: list[float] = []
        self.updates = 0
        self.failed = 0
        self.calls: Counter[str] = Counter()  # Bot API calls by method (getUpdates not seen)
        stub.listeners.append(self.on_call)

    def on_call(self, call: Call) -> None:
        self.calls[call.method] += 1
        if call.method != "sendMessage" or call.status != 200:
            return
        future = self.waiting.pop(int(call.chat_id or 0), None)
        if future is not None and not future.done():
            future.set_result(call)

    async def run_user(self, chat_id: int, number: int) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(chat_id)
        if self.load.think:
            await asyncio.sleep(rng.uniform(0, self.load.think))  # users arrive spread out
        for step in range(self.load.per_user):
            question = self.asked[(number * self.load.per_user + step) % len(self.asked)]
            future = self.waiting[chat_id] = loop.create_future()
            started = time.monotonic()
            self.stub.user_says(chat_id, question)
            self.updates += 1
            try:
                await asyncio.wait_for(future, STEP_TIMEOUT)
            except TimeoutError:
                self.failed += 1
                return
            self.latencies.append(time.monotonic() - started)
            if self.load.think:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * self.load.think)

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        chats = range(self.load.first_chat, self.load.first_chat + self.load.users)
        await asyncio.gather(*(self.run_user(chat, n) for n, chat in enumerate(chats)))
        return {
            "seconds": time.monotonic() - started,
            "updates": self.updates,
            "latencies": self.latencies,
            "failed": self.failed,
            "calls": dict(self.calls),
        }


def stub_process(conn: Connection) -> None:
    """Serve the Bot API; each ("run", Load) runs a crowd and answers with its figures."""

    async def main() -> None:
        stub = BotApiStub(record=False)
        conn.send(await stub.start())
        asked = questions()
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) != "bye":
            crowd = Crowd(stub, command[1], asked)
            conn.send(await crowd.run())
            stub.listeners.remove(crowd.on_call)
        await stub.close()

    asyncio.run(main())


# -- the bot processes ------------------------------------------------------------------------


def bot_process(conn: Connection, stack: str, base_url: str, options: dict[str, Any]) -> None:
    """Run one bot until told "stop"; then answer with its peak RSS (and a profile)."""
    logging.basicConfig(level=logging.WARNING)
    profiler = cProfile.Profile() if options["profile"] else None
    runner = run_bare if stack == "bare" else run_project
    asyncio.run(runner(conn, stack, base_url, options, profiler))
    # VmHWM, not ru_maxrss: a spawned child's ru_maxrss starts from its parent's at exec.
    result: dict[str, Any] = {"peak_mb": peak_rss_mb(os.getpid())}
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(options["sort"]).print_stats(35)
        result["profile"] = out.getvalue()
    conn.send(result)


async def serve_until_stopped(conn: Connection, profiler: cProfile.Profile | None) -> None:
    conn.send("ready")
    if profiler is not None:  # only the measured part, not imports and start-up
        profiler.enable()
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
    if profiler is not None:
        profiler.disable()


async def run_project(
    conn: Connection,
    stack: str,
    base_url: str,
    options: dict[str, Any],
    profiler: cProfile.Profile | None,
) -> None:
    from bot.app import build_app
    from bot.channels.telegram import running
    from bot.config import load_settings

    settings = load_settings(
        database_url=options["database_url"],
        redis_url=options["redis_url"],
        telegram_bot_token=TOKEN,
        telegram_api_url=base_url,
        telegram_library=stack,
        files_dir=Path(options["files_dir"]),
        log_level="WARNING",
    )
    app = await build_app(settings)
    try:
        async with running(settings, app, run_worker=False):
            await serve_until_stopped(conn, profiler)
    finally:
        await app.close()


async def run_bare(
    conn: Connection,
    stack: str,
    base_url: str,
    options: dict[str, Any],
    profiler: cProfile.Profile | None,
) -> None:
    """What the project is measured against: aiogram's idiom with nothing added."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.fsm.context import FSMContext
    from aiogram.fsm.storage.redis import RedisStorage
    from aiogram.types import Message
    from redis.asyncio import BlockingConnectionPool, Redis

    # redis-py's default pool (100 connections) raises "Too many connections" when aiogram
    # runs every polled update at once; the same pool that waits instead keeps it going.
    pool = BlockingConnectionPool.from_url(options["redis_url"], max_connections=100, timeout=60)
    storage = RedisStorage(Redis(connection_pool=pool))
    dispatcher = Dispatcher(storage=storage)

    @dispatcher.message()
    async def echo(message: Message, state: FSMContext) -> None:
        await state.update_data(last=message.text)
        await message.answer(message.text or "")

    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    bot = Bot(TOKEN, session=session)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    try:
        await serve_until_stopped(conn, profiler)
    finally:
        await dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await polling
        await storage.close()


# -- one stack --------------------------------------------------------------------------------


async def prepare(database_url: str, redis_url: str) -> None:
    from redis.asyncio import Redis

    from bench_common import fresh_database

    await fresh_database(database_url)  # the benchmark's own database: start empty
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()


def ask(conn: Connection, message: Any) -> Any:
    conn.send(message)
    return conn.recv()


def measure(stack: str, args: argparse.Namespace, first_chat: int) -> dict[str, Any]:
    """The throughput and the latency run of one bot, each against a fresh crowd."""
    ctx = mp.get_context("spawn")
    stub_conn, stub_child = ctx.Pipe()
    stub = ctx.Process(target=stub_process, args=(stub_child,), daemon=True)
    stub.start()
    base_url = stub_conn.recv()
    options = {
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "files_dir": args.files_dir,
        "profile": stack in (args.profile or []),
        "sort": args.sort,
    }
    bot_conn, bot_child = ctx.Pipe()
    started = time.monotonic()
    bot = ctx.Process(target=bot_process, args=(bot_child, stack, base_url, options))
    bot.start()
    assert bot_conn.recv() == "ready"
    start_seconds = time.monotonic() - started
    warm = Load(min(20, args.users), 2, 0.0, first_chat)
    ask(stub_conn, ("run", warm))  # imports and caches warm, connections open
    cpu_before = cpu_seconds(bot.pid)
    shared_before = shared_cpu(stub.pid)
    throughput = ask(stub_conn, ("run", Load(args.users, args.questions, 0.0, first_chat + 1000)))
    throughput["cpu"] = cpu_seconds(bot.pid) - cpu_before  # the bot process's, this run only
    shared_after = shared_cpu(stub.pid)
    throughput["shared_cpu"] = {  # per process alive at the end (one that ended is not known)
        name: sum(seconds - shared_before[name].get(pid, 0.0) for pid, seconds in by_pid.items())
        for name, by_pid in shared_after.items()
    }
    paced = Load(args.latency_users, args.questions, args.think, first_chat + 5000)
    latency = ask(stub_conn, ("run", paced))
    finish = ask(bot_conn, "stop")
    bot.join(30)
    stub_conn.send("bye")
    stub.join(10)
    return {"start": start_seconds, "throughput": throughput, "latency": latency, **finish}


def shared_cpu(stub_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far, by process, of what the bot shares the machine with: the stub
    (which also plays the users), Redis and PostgreSQL (every server process; Linux)."""
    found = {
        "stub": [stub_pid],
        "redis": [int(pid) for pid in _pgrep("-x", "redis-server")],
        "postgres": [int(pid) for pid in _pgrep("-x", "postgres")],
    }
    return {name: {pid: _cpu_or_zero(pid) for pid in pids} for name, pids in found.items()}


def _pgrep(*args: str) -> list[str]:
    found = subprocess.run(["pgrep", *args], capture_output=True, text=True, check=False)
    return found.stdout.split()


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):  # a backend that just ended
        return 0.0


# -- reporting ----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, int(len(ordered) * share + 0.5) - 1)] * 1000


def summarise(stack: str, result: dict[str, Any]) -> dict[str, Any]:
    fast, paced = result["throughput"], result["latency"]
    return {
        "stack": stack,
        "start": result["start"],
        "rate": fast["updates"] / fast["seconds"],
        "burst_p50": statistics.median(fast["latencies"]) * 1000,
        "burst_p99": percentile(fast["latencies"], 0.99),
        "p50": statistics.median(paced["latencies"]) * 1000,
        "p99": percentile(paced["latencies"], 0.99),
        "paced_rate": paced["updates"] / paced["seconds"],
        "peak_mb": result["peak_mb"],
        # CPU of the bot process per update in the throughput run: less at the mercy of what
        # else runs on the machine than updates/s.
        "cpu_ms": fast["cpu"] / max(fast["updates"], 1) * 1000,
        # …and of the processes it shares the two cores with, per update, same run.
        "shared_ms": {
            name: seconds / max(fast["updates"], 1) * 1000
            for name, seconds in fast["shared_cpu"].items()
        },
        "failed": fast["failed"] + paced["failed"],
        # Bot API calls per update in the throughput run, by method ("typing" is
        # sendChatAction: shown when an update takes longer than TYPING_AFTER).
        "calls": {m: n / max(fast["updates"], 1) for m, n in sorted(fast["calls"].items())},
    }


def report(args: argparse.Namespace, rows: list[dict[str, Any]], ratios: bool = True) -> None:
    print(
        f"\n{args.users} users × {args.questions} questions at once (throughput); "
        f"{args.latency_users} users × {args.questions} with ~{args.think:g} s pauses (latency)"
    )
    print(
        f"{'stack':10} {'start s':>8} {'updates/s':>10} {'burst p50':>10} {'burst p99':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'peak RSS':>9} {'CPU/upd':>8} {'failed':>7}  "
        f"{'+stub':>6} {'+Redis':>6} {'+PG':>6} {'=all':>6}  Bot API calls per update"
    )
    for row in rows:
        print(
            f"{row['stack']:10} {row['start']:8.1f} {row['rate']:10.0f} {row['burst_p50']:10.0f} "
            f"{row['burst_p99']:10.0f} {row['p50']:8.1f} {row['p99']:8.1f} "
            f"{row['peak_mb']:7.0f}MB {row['cpu_ms']:6.2f}ms {row['failed']:7d}  "
            + "".join(f"{row['shared_ms'][name]:6.2f} " for name in ("stub", "redis", "postgres"))
            + f"{row['cpu_ms'] + sum(row['shared_ms'].values()):6.2f}  "
            + " ".join(f"{method} {n:.2f}" for method, n in row["calls"].items())
        )
    bare = next((row for row in rows if row["stack"] == "bare"), None)
    if bare is None or not ratios:
        return
    for row in rows:
        if row is bare:
            continue
        print(
            f"{row['stack']} ÷ bare: updates/s {row['rate'] / bare['rate']:.2f} (target ≥ 1.0), "
            f"p99 {row['p99'] / bare['p99']:.2f}, peak RSS {row['peak_mb'] / bare['peak_mb']:.2f}, "
            f"CPU per update {row['cpu_ms'] / bare['cpu_ms']:.2f} (bot), "
            f"{total_cpu(row) / total_cpu(bare):.2f} (all processes)"
        )


def paired(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Each round's ratios to the bare bot of that same round, and their median: the machine's
    drift between rounds (the bare bot's own rate moves by up to 2×) cancels out."""
    per_round = len(args.stacks)
    rounds = [rows[i : i + per_round] for i in range(0, len(rows), per_round)]
    print(f"\nratios to the bare bot of the same round, median of {len(rounds)} rounds [range]:")
    for stack in (s for s in args.stacks if s != "bare"):
        rates, cpus, totals = [], [], []
        for group in rounds:
            mine = next(row for row in group if row["stack"] == stack)
            bare = next(row for row in group if row["stack"] == "bare")
            rates.append(mine["rate"] / bare["rate"])
            cpus.append(mine["cpu_ms"] / bare["cpu_ms"])
            totals.append(total_cpu(mine) / total_cpu(bare))
        print(
            f"{stack} ÷ bare: updates/s {_spread(rates)} (target ≥ 1.0), CPU per update "
            f"{_spread(cpus)} (bot), {_spread(totals)} (all processes)"
        )


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def total_cpu(row: dict[str, Any]) -> float:
    return float(row["cpu_ms"] + sum(row["shared_ms"].values()))


def outbox(args: argparse.Namespace, stack: str) -> None:
    import outbox_bench

    os.environ["TELEGRAM_LIBRARY"] = stack  # the worker processes inherit it
    options = argparse.Namespace(
        count=args.outbox_count,
        database="bdb_bench_outbox",
        redis_url="redis://127.0.0.1:6379/14",
        timeout=300,
    )
    stats = asyncio.run(outbox_bench.run(options, 1))
    span = stats["last"] - stats["first"]
    print(
        f"outbox, 1 worker ({stack}): {stats['delivered']} in {span:.2f} s = "
        f"{stats['delivered'] / span:.0f} deliveries/s (target ≥ 1500), "
        f"duplicates {stats['duplicates']}, worker peak RSS {stats['worker_peak_mb']:.0f} MB "
        f"(target ≤ 150), worker CPU {stats['worker_cpu'] / stats['delivered'] * 1e6:.0f} µs "
        "per delivery"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--questions", type=int, default=4, help="per user")
    parser.add_argument("--latency-users", type=int, default=200)
    parser.add_argument("--think", type=float, default=2.0, help="seconds between questions")
    parser.add_argument("--stacks", nargs="+", default=[*PROJECT_STACKS, "bare"])
    parser.add_argument("--rounds", type=int, default=2, help="each stack this many times")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--files-dir", default="/tmp/bdb-bench-files")
    parser.add_argument("--no-outbox", action="store_true", help="skip the outbox worker run")
    parser.add_argument("--outbox-count", type=int, default=10_000)
    parser.add_argument("--profile", nargs="*", help="cProfile these stacks' bot processes")
    parser.add_argument("--sort", default="tottime", help="profile order: tottime, cumulative")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    asyncio.run(prepare(args.database_url, args.redis_url))
    rows = []
    for round_ in range(args.rounds):  # the order alternates: a busy machine drifts
        order = args.stacks if round_ % 2 == 0 else args.stacks[::-1]
        for stack in order:
            first_chat = 1_000_000 * (len(rows) + 1)
            result = measure(stack, args, first_chat)
            rows.append(summarise(stack, result))
            if "profile" in result:
                print(f"\n-- profile of {stack}\n{result['profile']}")
    if args.rounds > 1:
        print("\nevery round:")
        report(args, rows, ratios=False)
        print("\nbest round of each (highest updates/s):")
    best = {}
    for row in rows:
        if row["stack"] not in best or row["rate"] > best[row["stack"]]["rate"]:
            best[row["stack"]] = row
    report(args, list(best.values()))
    if args.rounds > 1 and "bare" in args.stacks:
        paired(args, rows)
    from bench_common import drop_database

    asyncio.run(drop_database(args.database_url))
    if not args.no_outbox:
        for stack in (s for s in args.stacks if s in PROJECT_STACKS):
            outbox(args, stack)


if __name__ == "__main__":
    main()
