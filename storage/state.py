"""Conversation state: JSON per conversation with a TTL and a per-conversation lock."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, Protocol

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from storage.ratelimit import FloodGuard, RedisFloodGuard, Verdict

State = dict[str, Any]
log = logging.getLogger(__name__)


def dumps(state: State) -> bytes:
    """The state as compact UTF-8 JSON (orjson: a tenth of `json.dumps`'s time per update);
    keys that are not strings become strings, as `json` made them."""
    return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)


class StateUnavailable(Exception):
    """The state store cannot be reached right now."""


class Flooded(Exception):
    """The update is over a flood limit (`guard`'s): the conversation was not opened."""

    def __init__(self, verdict: Verdict, guard: FloodGuard | None = None) -> None:
        super().__init__(verdict.value)
        self.verdict = verdict
        self.guard = guard


# A flood window an update counts against: the guard and the key it counts under.
Window = tuple[FloodGuard, str]


def windows_of(key: str, flood: FloodGuard | None, also: Sequence[Window]) -> list[Window]:
    """Every window of an update, in counting order: `also` (e.g. the sender's address), then
    the conversation's own."""
    return [*also, *([(flood, key)] if flood is not None else [])]


async def count_windows(windows: Sequence[Window]) -> None:
    """Count the update against each window in turn; `Flooded` by the first over its limit
    (the later ones are not counted)."""
    for guard, key in windows:
        if (verdict := await guard.hit(key)) is not Verdict.ALLOW:
            raise Flooded(verdict, guard)


class StateStore(Protocol):
    @property
    def redis(self) -> Redis | None: ...  # the app's one Redis client (bot/app.py), or None
    @property
    def prefix(self) -> str: ...

    async def load(self, key: str) -> State: ...
    async def save(self, key: str, state: State) -> None: ...
    async def clear(self, key: str) -> None: ...
    def lock(self, key: str) -> AbstractAsyncContextManager[None]: ...
    def conversation(
        self, key: str, flood: FloodGuard | None = None, also: Sequence[Window] = ()
    ) -> AbstractAsyncContextManager[State]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class KeyLocks:
    """An asyncio lock per key, forgotten once nobody holds or awaits it: the updates of one
    conversation in this process run one at a time, in the order they arrived."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str, within: float | None = None) -> AsyncIterator[None]:
        """Hold `key`'s lock; StateUnavailable if it is not free `within` seconds."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            try:
                async with asyncio.timeout(within):
                    await lock.acquire()
            except TimeoutError:
                raise StateUnavailable("lock wait timed out") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # nobody else waits: forget the lock
                del self._waiters[key]
                self._locks.pop(key, None)


class MemoryStateStore:
    """In-process state for one process (the embedded default)."""

    redis: Redis | None = None
    prefix = "bdb:"

    def __init__(self, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self.ttl = ttl_seconds
        self._data: dict[str, tuple[float, bytes]] = {}
        self._locks = KeyLocks()

    async def load(self, key: str) -> State:
        entry = self._data.get(key)
        if entry is None:
            return {}
        expires, raw = entry
        if expires < time.monotonic():
            del self._data[key]
            return {}
        loaded: State = orjson.loads(raw)
        return loaded

    async def save(self, key: str, state: State) -> None:
        if not state:
            await self.clear(key)
            return
        self._data[key] = (time.monotonic() + self.ttl, dumps(state))

    async def clear(self, key: str) -> None:
        self._data.pop(key, None)

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(key)

    @asynccontextmanager
    async def conversation(
        self, key: str, flood: FloodGuard | None = None, also: Sequence[Window] = ()
    ) -> AsyncIterator[State]:
        """The conversation's state under its lock; saved only if the block finishes.

        The update is counted first against `also`'s windows and `flood`'s, and `Flooded`
        raised over a limit."""
        await count_windows(windows_of(key, flood, also))
        async with self.lock(key):
            state = await self.load(key)
            yield state
            await self.save(key, state)

    async def ping(self) -> None:
        """Always reachable: the state lives in this process."""

    async def close(self) -> None:
        self._data.clear()


# KEYS: lock, state, then flood windows; ARGV: token, lock ms, then per window its ms and
# limit. Windows are counted in order until one is over its limit. Returns {1 locked | 0 held
# by another | 2 flooded (not locked), state, the flooded window's number (1-based), its count}.
_LOCK_AND_GET = """
for i = 3, #KEYS do
  local count = redis.call('incr', KEYS[i])
  if count == 1 then redis.call('pexpire', KEYS[i], ARGV[2 * i - 3]) end
  if count > tonumber(ARGV[2 * i - 2]) then return {2, false, i - 2, count} end
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('get', KEYS[2]), 0, 0}
end
return {0, false, 0, 0}
"""
_SAVE_AND_UNLOCK = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('del', KEYS[2])
else redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
redis.call('del', KEYS[1])
return 1
"""
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


# How long a command waits for a free pooled connection: as long as an update may wait for
# its conversation's lock. redis-py's pool is not first-come first-served (a woken waiter may
# queue again behind newcomers), so under a 500-update burst on a starved machine some
# waited over 10 s and were answered "busy" (the flood guard, failing open, used to hide that).
POOL_WAIT_SECONDS = 30.0


def connect(url: str, max_connections: int = 50) -> Redis:
    """The app's Redis client (bot/app.py makes one); a blocking pool: a burst waits for a
    free connection instead of raising."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


class RedisStateStore:
    """State shared by every bot instance; JSON strings with a TTL, a Redis lock per key."""

    def __init__(
        self,
        url: str | None = None,
        ttl_seconds: int = 7 * 24 * 3600,
        prefix: str = "bdb:",
        max_connections: int = 50,
        lock_timeout: float = 30.0,
        redis: Redis | None = None,
    ) -> None:
        if redis is None:
            assert url is not None, "a Redis URL or client"
            redis = connect(url, max_connections)
        self.redis: Redis = redis
        self.ttl = ttl_seconds
        self.prefix = prefix
        self.lock_timeout = lock_timeout
        self._lock_and_get = self.redis.register_script(_LOCK_AND_GET)
        self._commit = self.redis.register_script(_SAVE_AND_UNLOCK)
        self._release = self.redis.register_script(_UNLOCK)

    def _key(self, key: str) -> str:
        return f"{self.prefix}state:{key}"

    async def load(self, key: str) -> State:
        try:
            raw = await self.redis.get(self._key(key))
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc
        if raw is None:
            return {}
        loaded: State = orjson.loads(raw)
        return loaded

    async def save(self, key: str, state: State) -> None:
        try:
            if not state:
                await self.redis.delete(self._key(key))
                return
            payload = dumps(state)
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
            sleep=0.01,
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

    @asynccontextmanager
    async def conversation(
        self, key: str, flood: FloodGuard | None = None, also: Sequence[Window] = ()
    ) -> AsyncIterator[State]:
        """Count the update against `also`'s windows and `flood`'s, lock and load in one round
        trip; save and unlock in another (`Flooded` over a limit, and nothing locked).

        The state is written only while this holder still owns the lock, so a holder whose
        lock expired can never overwrite a newer state; an exception leaves it untouched."""
        lock_key, state_key = f"{self.prefix}lock:{key}", self._key(key)
        token = secrets.token_hex(8)
        # Windows in this Redis are counted by the lock+load script: no round trip of their own.
        folded: list[tuple[RedisFloodGuard, str]] = []
        apart: list[Window] = []
        for guard, window_key in windows_of(key, flood, also):
            if isinstance(guard, RedisFloodGuard) and guard.redis is self.redis:
                folded.append((guard, window_key))
            else:
                apart.append((guard, window_key))
        await count_windows(apart)
        raw = await self._acquire(lock_key, state_key, token, folded)
        state: State = orjson.loads(raw) if raw else {}
        try:
            yield state
        except BaseException:
            with suppress(RedisError):
                await self._release(keys=[lock_key], args=[token], client=self.redis)
            raise
        payload = dumps(state) if state else b""
        try:
            kept = await self._eval(self._commit, [lock_key, state_key], [token, payload, self.ttl])
        except RedisError as exc:
            raise StateUnavailable(str(exc)) from exc
        if not kept:
            log.warning("conversation lock expired before save key=%s", key)

    async def _eval(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | bytes]
    ) -> Any:
        """EVALSHA straight on the client (redis-py's script object checks the client against
        its pipeline classes on every call: ≈ 1 % of a web message's CPU); loaded if missing."""
        try:
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=keys, args=args, client=self.redis)

    async def _acquire(
        self,
        lock_key: str,
        state_key: str,
        token: str,
        windows: Sequence[tuple[RedisFloodGuard, str]] = (),
    ) -> bytes | None:
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.005
        keys = [lock_key, state_key]
        args: list[str | int] = [token, int(self.lock_timeout * 1000)]
        for guard, window_key in windows:  # counted on the first try only
            keys.append(guard.key(window_key))
            args += [guard.window_ms, guard.limit]
        while True:
            try:
                got, raw, over, count = await self._eval(self._lock_and_get, keys, args)
            except RedisError as exc:
                raise StateUnavailable(str(exc)) from exc
            if int(over):
                guard = windows[int(over) - 1][0]
                raise Flooded(guard.verdict(int(count)), guard)
            keys, args = keys[:2], args[:2]
            if got:
                return raw
            if time.monotonic() > deadline:
                raise StateUnavailable("lock wait timed out")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def ping(self) -> None:
        """Raise StateUnavailable unless Redis answers (checked once at start)."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        await self.redis.aclose()
