"""Both conversation-state stores keep state, expire it and serialise one conversation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from conftest import _drop_prefix, redis_state
from storage.state import MemoryStateStore, RedisStateStore, StateStore, StateUnavailable


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
