"""WeChat callback path: simulated users apply through signed (安全模式) callbacks.

Each user follows the account, walks the application dialog by typing and submits; every
callback is timed from post to passive reply (the passive window is opened wide so every
answer is timed). Prints callbacks/s, latency percentiles and how many answers took longer
than WECHAT_REPLY_WITHIN (4 s): those would have gone by customer-service message.

    python bench/wechat_bench.py --users 20 [--backend production|embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "bot")]

from test_wechat_e2e import cases, choose, fill_application, wechat_channel  # noqa: E402

from bench_common import SERVER, fresh_database  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.config import load_settings  # noqa: E402
from storage.state import RedisStateStore  # noqa: E402
from wechat_stub import WeChatApiStub, WxUser  # noqa: E402

LATENCIES: list[float] = []
PASSIVE = load_settings().wechat_reply_within


class TimedUser(WxUser):
    async def send(self, xml: str) -> str:
        started = time.perf_counter()
        try:
            return await super().send(xml)
        finally:
            LATENCIES.append(time.perf_counter() - started)


async def run(users: int, backend: str) -> None:
    files = Path(tempfile.mkdtemp())
    if backend == "production":
        url = f"{SERVER}/bdb_wechat_bench"
        await fresh_database(url)
        settings = load_settings(
            database_url=url, redis_url="redis://127.0.0.1:6379/14", files_dir=files
        )
        state = RedisStateStore(settings.redis_url or "", prefix=f"bench:{uuid.uuid4().hex}:")
        app = await build_app(settings, state=state)
    else:
        settings = load_settings(database_url=f"sqlite+aiosqlite:///{files / 'b.db'}")
        app = await build_app(settings.model_copy(update={"files_dir": files}))
    stub = WeChatApiStub()
    await stub.server.start_server()
    async with wechat_channel(app, stub, wechat_reply_within=120) as running:

        async def one(n: int) -> None:
            user = TimedUser(running.server(encrypted=True), f"o-bench-{n}")
            await user.subscribe()
            await fill_application(user)
            await choose(user, "提交")

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(users)))
        elapsed = time.perf_counter() - started
        submitted = len(await cases(app))
    await stub.server.close()
    await app.close()
    LATENCIES.sort()
    p99 = LATENCIES[max(0, int(len(LATENCIES) * 0.99) - 1)]
    print(
        f"{backend}: {users} users, {len(LATENCIES)} callbacks in {elapsed:.1f} s "
        f"= {len(LATENCIES) / elapsed:.0f}/s; p50 {statistics.median(LATENCIES) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {LATENCIES[-1] * 1000:.0f} ms; "
        f"{sum(s > PASSIVE for s in LATENCIES)} over {PASSIVE:.0f} s; "
        f"{submitted}/{users} cases submitted"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--backend", choices=["production", "embedded"], default="production")
    args = parser.parse_args()
    asyncio.run(run(args.users, args.backend))


if __name__ == "__main__":
    main()
