"""The flood guard: a fixed window per user, in memory or shared through Redis."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from conftest import REDIS_URL, redis_state
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard, Verdict


async def verdicts(guard: FloodGuard, key: str, n: int) -> list[Verdict]:
    return [await guard.hit(key) for _ in range(n)]


EXPECTED = [Verdict.ALLOW] * 3 + [Verdict.WARN, Verdict.DROP, Verdict.DROP]


async def test_memory_guard_allows_the_limit_warns_once_then_drops() -> None:
    guard = MemoryFloodGuard(limit=3, window_seconds=0.2)
    assert await verdicts(guard, "a", 6) == EXPECTED
    assert await guard.hit("b") == Verdict.ALLOW  # other users are unaffected
    await asyncio.sleep(0.25)
    assert await guard.hit("a") == Verdict.ALLOW  # a new window


async def test_redis_guard_is_shared_between_instances() -> None:
    store = await redis_state(f"bdbtest:{uuid.uuid4().hex[:8]}:")
    prefix = store.prefix
    try:
        first = RedisFloodGuard(store.redis, limit=3, window_seconds=0.3, prefix=prefix)
        second = RedisFloodGuard(store.redis, limit=3, window_seconds=0.3, prefix=prefix)
        got = [await (first if n % 2 else second).hit("a") for n in range(6)]
        assert got == EXPECTED
        assert await first.hit("b") == Verdict.ALLOW
        await asyncio.sleep(0.35)
        assert await second.hit("a") == Verdict.ALLOW
    finally:
        await store.close()
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_redis_guard_lets_updates_through_when_redis_is_down() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await RedisFloodGuard(redis, limit=1).hit("a") == Verdict.ALLOW
    finally:
        await redis.aclose()
