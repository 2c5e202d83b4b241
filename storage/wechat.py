"""WeChat followers, callbacks already taken, signed queries already used, and the shared
access token."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Applicant,
    OutboxMessage,
    OutboxStatus,
    WeChatFollower,
    utcnow,
)

CHANNEL = "wechat"
SEEN_FOR = 3600  # seconds a callback is remembered; WeChat retries within 15 s
# The window is kept to the minute: a follower row is written at most once a minute per user.
TOUCH_EVERY = dt.timedelta(minutes=1)
UNDELIVERABLE = "undeliverable on wechat"


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def needs_touch(
    follower: WeChatFollower | None,
    *,
    wrote: bool = False,
    scene: str | None = None,
    subscribed: bool | None = None,
    blocked: bool = False,
    now: dt.datetime | None = None,
) -> bool:
    """Whether a callback changes what we keep about its sender (most do not: no write)."""
    if follower is None or ((wrote or subscribed) and blocked):
        return True
    if subscribed is not None and subscribed != follower.subscribed:
        return True
    if scene and not follower.scene:
        return True
    last = follower.last_message_at
    return wrote and (last is None or (now or utcnow()) - last > TOUCH_EVERY)


async def touch(
    session: AsyncSession,
    openid: str,
    *,
    wrote: bool = False,
    scene: str | None = None,
    subscribed: bool | None = None,
) -> WeChatFollower:
    """The follower of `openid`, created on first sight; `wrote` opens the 48-hour window."""
    now = utcnow()
    await session.execute(
        _insert(session)(WeChatFollower)
        .values(openid=openid, scene=scene, subscribed=True, created_at=now)
        .on_conflict_do_nothing(index_elements=["openid"])
    )
    follower = await session.get(WeChatFollower, openid, populate_existing=True)
    assert follower is not None
    if wrote:
        follower.last_message_at = now
    if scene and not follower.scene:  # the first source counts
        follower.scene = scene
    if subscribed is not None:
        follower.subscribed = subscribed
    if wrote or subscribed:  # they are there again: notices may reach them
        await session.execute(
            update(Applicant)
            .where(Applicant.channel == CHANNEL, Applicant.chat_id == openid)
            .values(unreachable=False)
            .execution_options(synchronize_session=False)
        )
    return follower


async def follower(session: AsyncSession, openid: str) -> WeChatFollower | None:
    return await session.get(WeChatFollower, openid)


async def blocked(session: AsyncSession, openid: str) -> bool:
    """Whether notices to this user were stopped (unfollowed, or out of WeChat's windows)."""
    query = select(Applicant.unreachable).where(
        Applicant.channel == CHANNEL, Applicant.chat_id == openid
    )
    return bool(await session.scalar(query))


@dataclass(frozen=True)
class FollowerStats:
    followers: int
    subscribed: int
    in_window: int  # wrote within the last 48 hours: customer-service messages reach them
    scenes: dict[str, int]  # followers by the QR code they came from
    undeliverable: int


async def stats(session: AsyncSession, window: dt.timedelta) -> FollowerStats:
    """Figures for operators: who follows, who can be reached, what could not be sent."""
    f = WeChatFollower
    followers, subscribed, in_window = (
        await session.execute(
            select(
                func.count(f.openid),
                func.count(f.openid).filter(f.subscribed.is_(True)),
                func.count(f.openid).filter(f.last_message_at >= utcnow() - window),
            )
        )
    ).one()
    scenes = await session.execute(
        select(f.scene, func.count(f.openid)).where(f.scene.is_not(None)).group_by(f.scene)
    )
    return FollowerStats(
        followers=int(followers),
        subscribed=int(subscribed),
        in_window=int(in_window),
        scenes={str(scene): int(count) for scene, count in scenes.all()},
        undeliverable=await undeliverable_count(session),
    )


async def undeliverable_count(session: AsyncSession) -> int:
    """Notices given up because WeChat offers no way to send them (no window, no template)."""
    query = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.channel == CHANNEL,
        OutboxMessage.status == OutboxStatus.DEAD,
        OutboxMessage.last_error.like(f"%{UNDELIVERABLE}%"),
    )
    return int(await session.scalar(query) or 0)


# -- callbacks already taken (WeChat retries a message it got no answer for) -------------


class SeenCallbacks(Protocol):
    async def first(self, key: str) -> bool:
        """Record `key`; False when it was recorded before (a retry)."""
        ...


class MemorySeenCallbacks:
    """The embedded default: one process takes every callback."""

    def __init__(self, seconds: float = SEEN_FOR) -> None:
        self.seconds = seconds
        self._seen: dict[str, float] = {}

    async def first(self, key: str) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:  # forget the old ones now and then
            self._seen = {k: at for k, at in self._seen.items() if at > now}
        if self._seen.get(key, 0.0) > now:
            return False
        self._seen[key] = now + self.seconds
        return True


class RedisSeenCallbacks:
    """Shared by every web process behind the load balancer: SET NX with a TTL."""

    def __init__(self, redis: Redis, prefix: str = "bdb:", seconds: int = SEEN_FOR) -> None:
        self.redis, self.prefix, self.seconds = redis, prefix, seconds

    async def first(self, key: str) -> bool:
        stored = await self.redis.set(
            f"{self.prefix}wechat:seen:{key}", 1, nx=True, ex=self.seconds
        )
        return bool(stored)


# -- (timestamp, nonce) pairs already used: a signed query is accepted once -----------------


class NoncesUnavailable(Exception):
    """The pair cannot be recorded now: the memory store is full, or Redis is unreachable."""


class CallbackNonces(Protocol):
    async def claim(self, timestamp: int, nonce: str, seconds: int) -> bool:
        """Record the pair for `seconds` past `timestamp`; False when it was used before."""
        ...


class MemoryCallbackNonces:
    """The embedded default: one process takes every callback. Entries leave when their
    timestamp is too old to be accepted anyway (a heap keeps that O(log n)); a full store
    refuses (NoncesUnavailable) rather than forget a pair that could still be replayed."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def claim(self, timestamp: int, nonce: str, seconds: int) -> bool:
        now = time.time()  # the clock the callback's freshness check reads
        while self._heap and self._heap[0][0] < now:
            _, old = heapq.heappop(self._heap)
            self._expires.pop(old, None)
        key = f"{timestamp}:{nonce}"
        if key in self._expires:
            return False
        if len(self._expires) >= self.limit:
            raise NoncesUnavailable(f"{self.limit} pairs within their window")
        expires = timestamp + seconds + 1.0
        self._expires[key] = expires
        heapq.heappush(self._heap, (expires, key))
        return True


class RedisCallbackNonces:
    """Shared by every web process: SET NX, kept until the timestamp is stale everywhere."""

    def __init__(self, redis: Redis, prefix: str = "bdb:") -> None:
        self.redis, self.prefix = redis, prefix

    async def claim(self, timestamp: int, nonce: str, seconds: int) -> bool:
        # Twice the window: a timestamp up to `seconds` ahead of this clock stays acceptable
        # that much longer, and instances' clocks differ a little.
        key = f"{self.prefix}wechat:nonce:{timestamp}:{nonce}"
        try:
            return bool(await self.redis.set(key, 1, nx=True, ex=2 * seconds + 1))
        except RedisError as exc:
            raise NoncesUnavailable(type(exc).__name__) from exc


# -- the access token, one for every process ---------------------------------------------


class TokenCache(Protocol):
    async def get(self) -> str | None: ...
    async def put(self, token: str, seconds: float) -> None: ...
    async def drop(self, token: str) -> None: ...
    def lock(self) -> AbstractAsyncContextManager[None]: ...


class MemoryTokenCache:
    """The embedded default: one process holds the token."""

    def __init__(self) -> None:
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        if self._token is None or self._token[1] < time.monotonic():
            return None
        return self._token[0]

    async def put(self, token: str, seconds: float) -> None:
        self._token = (token, time.monotonic() + seconds)

    async def drop(self, token: str) -> None:
        if self._token is not None and self._token[0] == token:
            self._token = None

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


_DROP_IF_SAME = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTokenCache:
    """Every process reads the token from Redis; one at a time fetches a new one."""

    def __init__(self, redis: Redis, app_id: str, prefix: str = "bdb:") -> None:
        self.redis = redis
        self.key = f"{prefix}wechat:token:{app_id}"
        self._drop = redis.register_script(_DROP_IF_SAME)

    async def get(self) -> str | None:
        raw = await self.redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def put(self, token: str, seconds: float) -> None:
        await self.redis.set(self.key, token, px=max(1, int(seconds * 1000)))

    async def drop(self, token: str) -> None:
        """Forget the token only if nobody has replaced it meanwhile."""
        await self._drop(keys=[self.key], args=[token], client=self.redis)

    @classmethod
    def from_url(cls, url: str, app_id: str, prefix: str = "bdb:") -> RedisTokenCache:
        """For a command that has no state store (menu, QR code)."""
        return cls(Redis.from_url(url, max_connections=2), app_id, prefix)

    async def close(self) -> None:
        await self.redis.aclose()

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        lock = self.redis.lock(f"{self.key}:lock", timeout=30, blocking_timeout=30, sleep=0.05)
        if not await lock.acquire():
            raise TimeoutError("wechat token lock wait timed out")
        try:
            yield
        finally:
            with suppress(LockError, RedisError):  # expired: the timeout freed it
                await lock.release()
