"""Flood guard: at most `limit` updates per user in a fixed window, shared through Redis."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError


class Verdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # the first update over the limit: tell the user once
    DROP = "drop"  # every further update in the window: ignore silently


def verdict(count: int, limit: int) -> Verdict:
    """What to do with the `count`-th update of a window."""
    if count <= limit:
        return Verdict.ALLOW
    return Verdict.WARN if count == limit + 1 else Verdict.DROP


class FloodGuard(Protocol):
    async def hit(self, key: str) -> Verdict: ...


class MemoryFloodGuard:
    """Fixed windows in this process (the embedded default)."""

    def __init__(self, limit: int = 20, window_seconds: float = 10.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._windows: dict[str, tuple[float, int]] = {}
        self._next_sweep = time.monotonic() + window_seconds

    async def hit(self, key: str) -> Verdict:
        now = time.monotonic()
        if now >= self._next_sweep:  # forget idle users so the dict stays small
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            self._next_sweep = now + self.window
        ends, count = self._windows.get(key, (0.0, 0))
        if ends <= now:
            ends, count = now + self.window, 0
        count += 1
        self._windows[key] = (ends, count)
        return verdict(count, self.limit)


class RedisFloodGuard:
    """Fixed windows in Redis (SET NX EX + INCR in one round trip), shared by every instance."""

    def __init__(
        self, redis: Redis, limit: int = 20, window_seconds: float = 10.0, prefix: str = "bdb:"
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.window_ms = max(1, int(window_seconds * 1000))
        self.prefix = prefix

    async def hit(self, key: str) -> Verdict:
        name = f"{self.prefix}flood:{key}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, px=self.window_ms, nx=True)
                pipe.incr(name)
                _, count = await pipe.execute()
        except RedisError:
            # The guard protects the service; when Redis is down the router answers "busy".
            return Verdict.ALLOW
        return verdict(int(count), self.limit)
