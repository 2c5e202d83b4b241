"""Rate limits shared through Redis (or kept in memory): the flood guard on incoming
updates, and the send limiter that keeps outgoing messages within Telegram's limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


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


# The window starts with its first update: INCR, and the first one sets the expiry.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisFloodGuard:
    """Fixed windows in Redis, shared by every instance: one Lua script, one command a hit
    (a MULTI/SET NX/INCR/EXEC pipeline cost four commands and redis-py's pipeline machinery
    on every update)."""

    def __init__(
        self, redis: Redis, limit: int = 20, window_seconds: float = 10.0, prefix: str = "bdb:"
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.window_ms = max(1, int(window_seconds * 1000))
        self.prefix = prefix
        self._hit = redis.register_script(_HIT)

    def key(self, key: str) -> str:
        """The Redis key of `key`'s window (the state store counts it with the lock too)."""
        return f"{self.prefix}flood:{key}"

    async def hit(self, key: str) -> Verdict:
        try:
            count = await self._hit(keys=[self.key(key)], args=[self.window_ms])
        except RedisError:
            # The guard protects the service; when Redis is down the router answers "busy".
            return Verdict.ALLOW
        return self.verdict(int(count))

    def verdict(self, count: int) -> Verdict:
        return verdict(count, self.limit)


# -- outgoing messages: Telegram's 30 per second in total and 1 per second per chat ----------


class Grant(StrEnum):
    SEND = "send"  # send after `Permit.seconds`; the slot is reserved
    CHAT_BUSY = "chat_busy"  # this chat had a message less than `chat_spacing` ago
    FULL = "full"  # the global rate is booked beyond the horizon: ask again after `seconds`


@dataclass(frozen=True)
class Permit:
    """The limiter's answer for one chat: send after `seconds`, or ask again after `seconds`."""

    grant: Grant
    seconds: float


class SendLimiter(Protocol):
    async def reserve(self, chats: Sequence[str]) -> list[Permit]:
        """One permit per chat, in order; granted slots are taken, the others are not."""
        ...

    async def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (the channel answered 429 with retry_after)."""
        ...


class UnlimitedSendLimiter:
    """No limits (tests that exercise delivery logic, not pacing)."""

    async def reserve(self, chats: Sequence[str]) -> list[Permit]:
        return [Permit(Grant.SEND, 0.0) for _ in chats]

    async def pause(self, seconds: float) -> None:
        return None


# Telegram counts messages when they arrive, the limiter when their slot starts; the event
# loop and HTTP shift arrivals by a few ms, so the limiter's "second" is 3% longer. Without
# it a 300-message burst drew ~3% 429s from the flood-limiting stub; with it, none.
MARGIN = 0.03


class MemorySendLimiter:
    """Strict spacing in this process: slots 1/rate apart (GCRA without burst), and one
    message per `chat_spacing` per chat. A rate of 0 or less means no global limit."""

    def __init__(
        self,
        rate: float = 30.0,
        chat_spacing: float = 1.0,
        horizon: float = 0.5,
        margin: float = MARGIN,
    ) -> None:
        self.interval = (1.0 + margin) / rate if rate > 0 else 0.0
        self.chat_spacing = chat_spacing * (1.0 + margin)
        self.horizon = horizon
        self._next_slot = 0.0  # the theoretical arrival time of the next send (monotonic)
        self._chat_free_at: dict[str, float] = {}
        self._next_sweep = 0.0

    async def reserve(self, chats: Sequence[str]) -> list[Permit]:
        now = time.monotonic()
        if now >= self._next_sweep:  # forget chats that may send again
            self._chat_free_at = {k: t for k, t in self._chat_free_at.items() if t > now}
            self._next_sweep = now + 10 * self.chat_spacing
        slot = max(self._next_slot, now)
        permits = []
        for chat in chats:
            free_at = self._chat_free_at.get(chat, 0.0)
            if free_at > now:
                permits.append(Permit(Grant.CHAT_BUSY, free_at - now))
            elif self.interval and slot - now > self.horizon:
                # Come back when half the horizon has drained, so the next call gets a batch.
                permits.append(Permit(Grant.FULL, slot - now - self.horizon / 2))
            else:
                permits.append(Permit(Grant.SEND, slot - now))
                self._chat_free_at[chat] = slot + self.chat_spacing
                slot += self.interval
        self._next_slot = slot
        return permits

    async def pause(self, seconds: float) -> None:
        self._next_slot = max(self._next_slot, time.monotonic() + seconds)


# KEYS[1] the global slot (µs, Redis clock), KEYS[2..] one per chat (set while the chat waits).
# ARGV: interval µs (0: no global limit), horizon µs, chat spacing µs, pause µs (pause only).
# Returns a flat list: code (1 send, 0 chat busy, 2 full), µs — for each chat key in order.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, horizon, spacing = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local out = {}
for i = 2, #KEYS do
  local busy = redis.call('PTTL', KEYS[i])
  if busy > 0 then
    out[#out + 1] = 0
    out[#out + 1] = busy * 1000
  elseif interval > 0 and slot - now > horizon then
    out[#out + 1] = 2
    out[#out + 1] = slot - now - horizon / 2
  else
    redis.call('SET', KEYS[i], '1', 'PX', math.ceil((slot - now + spacing) / 1000))
    out[#out + 1] = 1
    out[#out + 1] = slot - now
    slot = slot + interval
  end
end
if interval > 0 and slot > now then
  local ttl = math.ceil((slot - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', slot), 'PX', ttl)
end
return out
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now + pause then
  local ttl = math.ceil(pause / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', now + pause), 'PX', ttl)
end
return 1
"""

_GRANTS = {0: Grant.CHAT_BUSY, 1: Grant.SEND, 2: Grant.FULL}
MICRO = 1_000_000


class RedisSendLimiter:
    """The same limits shared by every worker process: one Lua script, one round trip per
    batch, on Redis's clock. If Redis fails, this process falls back to its own limits."""

    def __init__(
        self,
        redis: Redis,
        rate: float = 30.0,
        chat_spacing: float = 1.0,
        horizon: float = 0.5,
        prefix: str = "bdb:",
        margin: float = MARGIN,
    ) -> None:
        self.redis = redis
        self.interval_us = round(MICRO * (1.0 + margin) / rate) if rate > 0 else 0
        self.horizon_us = round(horizon * MICRO)
        self.spacing_us = round(chat_spacing * (1.0 + margin) * MICRO)
        self.prefix = prefix
        self.fallback = MemorySendLimiter(rate, chat_spacing, horizon, margin)
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)

    async def reserve(self, chats: Sequence[str]) -> list[Permit]:
        if not chats:
            return []
        keys = [f"{self.prefix}send:global", *(f"{self.prefix}send:chat:{c}" for c in chats)]
        args = [self.interval_us, self.horizon_us, self.spacing_us]
        try:
            flat = await self._reserve(keys=keys, args=args)
        except RedisError:
            log.warning("send limiter: Redis unavailable, limiting this process only")
            return await self.fallback.reserve(chats)
        return [
            Permit(_GRANTS[int(code)], int(micros) / MICRO)
            for code, micros in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def pause(self, seconds: float) -> None:
        await self.fallback.pause(seconds)
        try:
            await self._pause(keys=[f"{self.prefix}send:global"], args=[round(seconds * MICRO)])
        except RedisError:
            log.warning("send limiter: Redis unavailable, pause kept in this process")
