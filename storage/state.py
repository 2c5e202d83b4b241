"""Conversation state: JSON per conversation with a TTL and a per-conversation lock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

State = dict[str, Any]


class StateUnavailable(Exception):
    """The state store cannot be reached right now."""


class StateStore(Protocol):
    async def load(self, key: str) -> State: ...
    async def save(self, key: str, state: State) -> None: ...
    async def clear(self, key: str) -> None: ...
    def lock(self, key: str) -> AbstractAsyncContextManager[None]: ...
    async def close(self) -> None: ...


class MemoryStateStore:
    """In-process state for one process (the embedded default)."""

    def __init__(self, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self.ttl = ttl_seconds
        self._data: dict[str, tuple[float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    async def load(self, key: str) -> State:
        entry = self._data.get(key)
        if entry is None:
            return {}
        expires, raw = entry
        if expires < time.monotonic():
            del self._data[key]
            return {}
        loaded: State = json.loads(raw)
        return loaded

    async def save(self, key: str, state: State) -> None:
        if not state:
            await self.clear(key)
            return
        self._data[key] = (time.monotonic() + self.ttl, json.dumps(state, ensure_ascii=False))

    async def clear(self, key: str) -> None:
        self._data.pop(key, None)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # nobody else waits: forget the lock
                del self._waiters[key]
                self._locks.pop(key, None)

    async def close(self) -> None:
        self._data.clear()


class RedisStateStore:
    """State shared by every bot instance; JSON strings with a TTL, a Redis lock per key."""

    def __init__(
        self,
        url: str,
        ttl_seconds: int = 7 * 24 * 3600,
        prefix: str = "bdb:",
        max_connections: int = 50,
        lock_timeout: float = 30.0,
    ) -> None:
        # Blocking pool: a burst waits for a free connection instead of raising.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=10,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=30,
        )
        self.redis: Redis = Redis(connection_pool=pool)
        self.ttl = ttl_seconds
        self.prefix = prefix
        self.lock_timeout = lock_timeout

    def _key(self, key: str) -> str:
        return f"{self.prefix}state:{key}"

    async def load(self, key: str) -> State:
        try:
            raw = await self.redis.get(self._key(key))
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc
        if raw is None:
            return {}
        loaded: State = json.loads(raw)
        return loaded

    async def save(self, key: str, state: State) -> None:
        try:
            if not state:
                await self.redis.delete(self._key(key))
                return
            payload = json.dumps(state, ensure_ascii=False)
            await self.redis.set(self._key(key), payload, ex=self.ttl)
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self._key(key))
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        # Lock expiry guards against a crashed holder; updates of one user run in order.
        lock = self.redis.lock(
            f"{self.prefix}lock:{key}",
            timeout=self.lock_timeout,
            blocking_timeout=self.lock_timeout,
        )
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc
        if not acquired:
            raise StateUnavailable("lock wait timed out")
        try:
            yield
        finally:
            with suppress(RedisError):  # expired or Redis gone: the TTL frees it
                await lock.release()

    async def close(self) -> None:
        await self.redis.aclose()
