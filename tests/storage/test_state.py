"""Every conversation-state store keeps state, expires it and serialises one conversation."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

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
from storage.state_sqlite import SqliteStateStore


@pytest.fixture(params=["memory", "redis", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore(ttl_seconds=60)
        return
    if request.param == "sqlite":
        sqlite = SqliteStateStore(tmp_path / "state.db", ttl_seconds=60)
        yield sqlite
        await sqlite.close()
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


class FakeClock:
    """Wall-clock seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def stored_keys(path: Path) -> list[str]:
    """The keys with a row in the state file, expired or not, read as another process would."""
    with sqlite3.connect(path) as db:
        return [key for (key,) in db.execute("SELECT key FROM state ORDER BY key")]


async def test_sqlite_state_outlives_the_store_that_wrote_it(tmp_path: Path) -> None:
    first = SqliteStateStore(tmp_path / "state.db")
    async with first.conversation("test:r") as state:
        state["draft"] = {"form": "application", "step": 4}
    await first.close()
    second = SqliteStateStore(tmp_path / "state.db")
    assert await second.load("test:r") == {"draft": {"form": "application", "step": 4}}
    await second.close()


async def test_sqlite_state_expires_after_its_ttl_and_is_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteStateStore(tmp_path / "state.db", ttl_seconds=3600, clock=clock)
    await store.save("test:old", {"a": 1})
    clock.now += 1800
    async with store.conversation("test:new") as state:
        state["b"] = 2
    clock.now += 1801  # test:old is past its hour, test:new is not
    assert await store.load("test:old") == {}
    assert await store.load("test:new") == {"b": 2}
    assert stored_keys(tmp_path / "state.db") == ["test:new", "test:old"]  # not yet purged
    await store.save("test:other", {"c": 3})  # an hour after the last purge: purges now
    assert stored_keys(tmp_path / "state.db") == ["test:new", "test:other"]
    await store.close()


async def test_two_processes_on_one_file_run_a_conversation_one_at_a_time(
    tmp_path: Path,
) -> None:
    # Two stores on one file stand for `bangdaiban web` and a console: separate connections,
    # separate in-process locks; only the lease row keeps them apart.
    web, console = (SqliteStateStore(tmp_path / "state.db") for _ in range(2))

    async def increment(store: SqliteStateStore) -> None:
        async with store.conversation("test:n") as state:
            value = state.get("n", 0)
            await asyncio.sleep(0.002)
            state["n"] = value + 1

    await asyncio.gather(*(increment(store) for _ in range(10) for store in (web, console)))
    assert await web.load("test:n") == {"n": 20}
    await web.close()
    await console.close()


async def test_a_lease_whose_holder_died_is_taken_over_and_its_late_save_dropped(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    slow, fast = (
        SqliteStateStore(tmp_path / "state.db", lock_timeout=30, clock=clock) for _ in range(2)
    )
    async with slow.conversation("test:x") as state:
        state["who"] = "slow"
        clock.now += 31  # past the lease: as if this holder had died
        async with asyncio.timeout(5), fast.conversation("test:x") as newer:
            newer["who"] = "fast"
    assert await fast.load("test:x") == {"who": "fast"}
    async with asyncio.timeout(5), slow.conversation("test:x") as state:  # nothing left held
        assert state == {"who": "fast"}
    await slow.close()
    await fast.close()


async def test_a_held_lease_keeps_another_process_waiting_until_released(
    tmp_path: Path,
) -> None:
    web, console = (SqliteStateStore(tmp_path / "state.db") for _ in range(2))
    order: list[str] = []
    entered = asyncio.Event()

    async def hold() -> None:
        async with web.lock("test:l"):
            order.append("web in")
            entered.set()
            await asyncio.sleep(0.1)
            order.append("web out")

    async def wait() -> None:
        await entered.wait()
        async with console.lock("test:l"):
            order.append("console in")

    await asyncio.gather(hold(), wait())
    assert order == ["web in", "web out", "console in"]
    await web.close()
    await console.close()


async def test_an_unusable_state_file_raises_state_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SqliteStateStore(tmp_path / "file" / "state.db")
    with pytest.raises(StateUnavailable):
        await store.ping()
    await store.close()
    closed = SqliteStateStore(tmp_path / "state.db")
    await closed.close()
    with pytest.raises(StateUnavailable):
        await closed.load("test:1")


async def test_closing_gives_back_the_leases_of_updates_cut_short(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    held = store.lock("test:k")
    await held.__aenter__()  # an update still running when the process shuts down
    await store.close()
    # Without the lease given back, the next process would wait out the lease and give up.
    restarted = SqliteStateStore(tmp_path / "state.db", lock_timeout=0.2)
    async with restarted.conversation("test:k") as state:
        state["resumed"] = True
    assert await restarted.load("test:k") == {"resumed": True}
    await restarted.close()
