"""Conversation state in its own SQLite file: the embedded default survives a restart."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TypeVar

import orjson
from redis.asyncio import Redis

from storage.ratelimit import FloodGuard
from storage.state import (
    KeyLocks,
    State,
    StateUnavailable,
    Window,
    count_windows,
    dumps,
    windows_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, data BLOB NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_expires ON state (expires);
CREATE TABLE IF NOT EXISTS lease (
    key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
"""
# Takes the lease unless another holder's is still running; the row count says which.
_TAKE_LEASE = """
INSERT INTO lease (key, token, expires) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires = excluded.expires
WHERE lease.expires <= ?
"""
_PUT = """
INSERT INTO state (key, data, expires) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires = excluded.expires
"""
# How long a statement waits for another process's write transaction (they last microseconds).
BUSY_SECONDS = 5.0
# Expired rows are skipped when read; deleted at open and then at most this often.
PURGE_EVERY_SECONDS = 3600.0


class SqliteStateStore:
    """State kept in a SQLite file beside the embedded database, with a TTL and a lock per
    conversation — the Redis store's semantics for one machine.

    Within one process an asyncio lock per key queues a conversation's updates in arrival order.
    Across processes sharing the file (`bangdaiban web` and a console) a lease row per key
    does what the Redis lock does: one holder at a time, taken over once `lock_timeout` has
    passed (a holder that died), and a holder whose lease was taken over cannot save.
    Every statement runs on the store's one thread and connection, off the event loop, in
    WAL mode; each step is one transaction, so two processes never corrupt the file."""

    redis: Redis | None = None
    prefix = "bdb:"

    def __init__(
        self,
        path: Path,
        ttl_seconds: int = 7 * 24 * 3600,
        lock_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl = ttl_seconds
        self.lock_timeout = lock_timeout
        # Wall-clock time: expiry and leases outlive this process and are shared with others.
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._closed = False  # on the thread: the connection is closed for good
        self._stopping = False  # on the loop: close() was called
        self._purged: float | None = None  # purged at the first write
        # One thread owns the connection: statements never interleave, and jobs run in order.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="state-sqlite")
        self._locks = KeyLocks()
        self._owner = secrets.token_hex(6)  # this store's leases, given back all at once on close

    async def load(self, key: str) -> State:
        return _parse(await self._call(self._read, key))

    async def save(self, key: str, state: State) -> None:
        await self._call(self._write_state, key, dumps(state) if state else None)

    async def clear(self, key: str) -> None:
        await self._call(self._write_state, key, None)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        async with self._locks.hold(key, self.lock_timeout):
            token = self._token()
            await self._acquire(key, token, load=False)
            try:
                yield
            finally:
                self._release(key, token)

    @asynccontextmanager
    async def conversation(
        self, key: str, flood: FloodGuard | None = None, also: Sequence[Window] = ()
    ) -> AsyncIterator[State]:
        """The conversation's state under its lock and lease; saved only if the block finishes,
        and only while this holder still has the lease (`Flooded` over a flood limit: `also`'s
        windows and `flood`'s)."""
        await count_windows(windows_of(key, flood, also))
        async with self._locks.hold(key, self.lock_timeout):
            token = self._token()
            state = _parse(await self._acquire(key, token, load=True))
            try:
                yield state
            except BaseException:
                self._release(key, token)
                raise
            try:
                kept = await self._call(self._commit, key, token, dumps(state) if state else None)
            except StateUnavailable:  # nothing was written: not even the lease's release
                self._release(key, token)
                raise
            if not kept:
                log.warning("conversation lease taken over before save key=%s", key)

    async def ping(self) -> None:
        """Raise StateUnavailable unless the file opens and answers."""
        await self._call(lambda: self._open().execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._stopping:  # closed already (or closing)
            return
        self._stopping = True
        try:
            await self._call(self._close)
        finally:
            self._thread.shutdown(wait=True)  # idle by now: the close ran after every job

    def _token(self) -> str:
        return f"{self._owner}:{secrets.token_hex(8)}"

    async def _acquire(self, key: str, token: str, load: bool) -> bytes | None:
        """Take the key's lease (waiting while another process holds it), and its state."""
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.005
        while True:
            try:
                got, raw = await self._call(self._take, key, token, load)
            except asyncio.CancelledError:
                # The thread may still take the lease: give it back right after, in order.
                self._release(key, token)
                raise
            if got:
                return raw
            if time.monotonic() > deadline:
                raise StateUnavailable("lock wait timed out")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _release(self, key: str, token: str) -> None:
        """Give the lease back without waiting: queued on the store's thread, so it runs
        before any later attempt to take it."""
        with suppress(RuntimeError):  # closed: the lease expires by itself
            self._thread.submit(self._give_back, key, token)

    async def _call(self, job: Callable[..., T], *args: object) -> T:
        try:
            done = asyncio.get_running_loop().run_in_executor(self._thread, partial(job, *args))
        except RuntimeError as exc:  # the thread was shut down: the store is closed
            raise StateUnavailable("state store closed") from exc
        try:
            return await done
        except (sqlite3.Error, OSError) as exc:
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc

    # Everything below runs on the store's thread.

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("state store closed")
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                # A process crash loses nothing in WAL mode; a power cut may lose the newest.
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._open()
        db.execute("BEGIN IMMEDIATE")  # the write lock at once: no deadlock upgrading a read
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _purge_now_and_then(self) -> None:
        now = self.clock()
        if self._purged is not None and now - self._purged < PURGE_EVERY_SECONDS:
            return
        self._purged = now
        try:
            with self._transaction() as db:
                removed = db.execute("DELETE FROM state WHERE expires <= ?", (now,)).rowcount
                db.execute("DELETE FROM lease WHERE expires <= ?", (now,))
        except sqlite3.Error as exc:  # tried again next time; reads skip expired rows anyway
            log.warning("expired conversation states not purged error=%s", exc)
            return
        if removed:
            log.info("expired conversation states purged count=%d", removed)

    def _read(self, key: str) -> bytes | None:
        row = (
            self._open()
            .execute("SELECT data FROM state WHERE key = ? AND expires > ?", (key, self.clock()))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def _write_state(self, key: str, payload: bytes | None) -> None:
        with self._transaction() as db:
            self._put(db, key, payload)
        self._purge_now_and_then()

    def _put(self, db: sqlite3.Connection, key: str, payload: bytes | None) -> None:
        if payload is None:
            db.execute("DELETE FROM state WHERE key = ?", (key,))
        else:
            db.execute(_PUT, (key, payload, self.clock() + self.ttl))

    def _take(self, key: str, token: str, load: bool) -> tuple[bool, bytes | None]:
        with self._transaction() as db:
            now = self.clock()
            taken = db.execute(_TAKE_LEASE, (key, token, now + self.lock_timeout, now)).rowcount
            if not taken or not load:
                return bool(taken), None
            row = db.execute(
                "SELECT data FROM state WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return True, None if row is None else bytes(row[0])

    def _commit(self, key: str, token: str, payload: bytes | None) -> bool:
        """Save and give the lease back, if this holder still has it."""
        with self._transaction() as db:
            held = db.execute(
                "DELETE FROM lease WHERE key = ? AND token = ?", (key, token)
            ).rowcount
            if held:
                self._put(db, key, payload)
        self._purge_now_and_then()
        return bool(held)

    def _give_back(self, key: str, token: str) -> None:
        if self._closed:  # closing gave back every lease of this store
            return
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM lease WHERE key = ? AND token = ?", (key, token))
        except sqlite3.Error as exc:  # nobody awaits this: the lease expires by itself
            log.warning("conversation lease not released key=%s error=%s", key, exc)

    def _close(self) -> None:
        try:
            if self._db is not None:  # leases of updates cut short: a restart finds them free
                with self._transaction() as db:
                    db.execute("DELETE FROM lease WHERE token LIKE ?", (f"{self._owner}:%",))
        finally:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None


def _parse(raw: bytes | None) -> State:
    if not raw:
        return {}
    loaded: State = orjson.loads(raw)
    return loaded
