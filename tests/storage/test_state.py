"""Both conversation-state stores keep state, expire it and serialise one conversation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from conftest import _drop_prefix, redis_state
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard, Verdict
from storage.state import (
    Flooded,
    MemoryStateStore,
    RedisStateStore,
    StateStore,
    StateUnavailable,
)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore(ttl_seconds=60)
        return
    prefix = f"bdbtest:{uuid.uuid4().hex[:8]}:"
    redis = await redis_state(prefix)
    yield redis
    await redis.close()
    await _drop_prefix(prefix)


async def test_state_round_trips_chinese_and_nesting(store: StateStore) -> None:
    state = {"draft": {"answers": {"company": "湖南某某公司", "items": ["a", "b"]}}}
    await store.save("test:1", state)
    assert await store.load("test:1") == state
    assert await store.load("test:2") == {}
    await store.clear("test:1")
    assert await store.load("test:1") == {}


async def test_empty_state_is_not_kept(store: StateStore) -> None:
    await store.save("test:1", {"a": 1})
    await store.save("test:1", {})
    assert await store.load("test:1") == {}


async def test_lock_serialises_updates_of_one_conversation(store: StateStore) -> None:
    async def increment() -> None:
        async with store.lock("test:1"):
            state = await store.load("test:1")
            await asyncio.sleep(0.005)
            await store.save("test:1", {"n": state.get("n", 0) + 1})

    await asyncio.gather(*(increment() for _ in range(20)))
    assert (await store.load("test:1"))["n"] == 20


async def test_memory_state_expires() -> None:
    store = MemoryStateStore(ttl_seconds=0)
    await store.save("test:1", {"a": 1})
    await asyncio.sleep(0.01)
    assert await store.load("test:1") == {}


async def test_redis_state_has_a_ttl() -> None:
    prefix = f"bdbtest:{uuid.uuid4().hex[:8]}:"
    store = await redis_state(prefix)
    store.ttl = 100
    await store.save("test:1", {"a": 1})
    assert 0 < await store.redis.ttl(f"{prefix}state:test:1") <= 100
    await store.close()
    await _drop_prefix(prefix)


async def test_unreachable_redis_raises_state_unavailable() -> None:
    store = RedisStateStore("redis://127.0.0.1:1/0")
    with pytest.raises(StateUnavailable):
        await store.load("test:1")
    await store.close()


async def test_conversation_saves_on_success_and_not_on_error(store: StateStore) -> None:
    async with store.conversation("test:c") as state:
        state["step"] = 1
    assert await store.load("test:c") == {"step": 1}
    with pytest.raises(RuntimeError):
        async with store.conversation("test:c") as state:
            state["step"] = 2
            raise RuntimeError("handler failed")
    assert await store.load("test:c") == {"step": 1}
    async with store.conversation("test:c") as state:  # the lock was released
        state.clear()
    assert await store.load("test:c") == {}


async def test_conversations_of_one_user_run_one_at_a_time(store: StateStore) -> None:
    async def increment() -> None:
        async with store.conversation("test:n") as state:
            value = state.get("n", 0)
            await asyncio.sleep(0.002)
            state["n"] = value + 1

    await asyncio.gather(*(increment() for _ in range(25)))
    assert (await store.load("test:n"))["n"] == 25


async def test_expired_holder_cannot_overwrite_a_newer_state() -> None:
    prefix = f"bdbtest:{uuid.uuid4().hex[:8]}:"
    store = await redis_state(prefix)
    store.lock_timeout = 0.05
    async with store.conversation("test:x") as state:
        state["who"] = "slow"
        await asyncio.sleep(0.1)  # the lock expires meanwhile
        async with store.conversation("test:x") as newer:
            newer["who"] = "fast"
    assert await store.load("test:x") == {"who": "fast"}
    await store.close()
    await _drop_prefix(prefix)


def flood_guard(store: StateStore, limit: int) -> FloodGuard:
    """The guard `bangdaiban run` pairs with the store: Redis shares the store's client."""
    if store.redis is not None:
        return RedisFloodGuard(store.redis, limit=limit, window_seconds=30, prefix=store.prefix)
    return MemoryFloodGuard(limit=limit, window_seconds=30)


async def test_a_conversation_over_the_flood_limit_is_refused_unlocked_and_unsaved(
    store: StateStore,
) -> None:
    guard = flood_guard(store, limit=2)
    verdicts = []
    for n in range(4):
        try:
            async with store.conversation("test:f", guard) as state:
                state["n"] = n
                verdicts.append(Verdict.ALLOW)
        except Flooded as flooded:
            verdicts.append(flooded.verdict)
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.DROP]
    assert await store.load("test:f") == {"n": 1}  # the refused ones wrote nothing
    # Nothing was left locked: the next conversation without the guard opens at once.
    async with asyncio.timeout(2), store.conversation("test:f") as state:
        assert state == {"n": 1}
    # The window is the guard's own: a plain hit counts on from the conversations'.
    assert await guard.hit("test:f") == Verdict.DROP


async def test_the_flood_window_is_counted_once_while_waiting_for_the_lock(
    store: StateStore,
) -> None:
    guard = flood_guard(store, limit=2)
    release = asyncio.Event()

    async def holder() -> None:
        async with store.conversation("test:w", guard):
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(_open(store, "test:w", guard))
    await asyncio.sleep(0.3)  # the Redis store retries the lock meanwhile
    release.set()
    await asyncio.gather(held, waiting)
    assert await guard.hit("test:w") == Verdict.WARN  # the 3rd update: two were counted


async def _open(store: StateStore, key: str, guard: FloodGuard) -> None:
    async with store.conversation(key, guard):
        pass
