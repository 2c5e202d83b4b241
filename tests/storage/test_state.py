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
