"""Rows written a moment later, many in one transaction: for records nobody reads back at
once (the 服务统计 count of each consultation), so a message does not pay a transaction's
round trips for them. A crash loses at most the last `interval`'s rows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base

log = logging.getLogger(__name__)


class WriteBehind:
    def __init__(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        interval: float = 0.05,
        limit: int = 10_000,
    ) -> None:
        self.transaction, self.interval, self.limit = transaction, interval, limit
        self._pending: list[tuple[type[Base], dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._writing = False  # the task is past its pause, writing a batch

    def add(self, model: type[Base], values: dict[str, Any]) -> None:
        """Write a row of `model` within `interval` (with every other row added meanwhile)."""
        if len(self._pending) >= self.limit:  # the database is away: keep the newest
            log.warning("write-behind full, oldest row dropped limit=%d", self.limit)
            del self._pending[0]
        self._pending.append((model, values))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.interval)  # let a burst gather into one transaction
        self._writing = True
        try:
            await self.flush()
        except Exception as exc:  # kept for the next add or close
            error = type(exc).__name__
            log.warning("write-behind failed rows=%d error=%s", len(self._pending), error)
        finally:
            self._writing = False

    async def flush(self) -> None:
        """Write every row added so far, in one transaction: one INSERT per model (no ORM
        objects: their unit of work costs more than the rows)."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        by_model: dict[type[Base], list[dict[str, Any]]] = {}
        for model, values in batch:
            by_model.setdefault(model, []).append(values)
        try:
            async with self.transaction() as session:
                for model, rows in by_model.items():
                    await session.execute(insert(cast(Table, model.__table__)), rows)
        except Exception:
            self._pending[:0] = batch[-self.limit :]
            raise

    async def close(self) -> None:
        """Write what is left (the process is stopping). A batch on its way is waited for, not
        cancelled: cancelled mid-transaction, its rows would be lost, and its connection still
        closing after the database is disposed of."""
        task = self._task
        if task is not None and not task.done():
            if not self._writing:
                task.cancel()  # only its pause: the rows are written below
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            error = type(exc).__name__
            log.warning("write-behind lost rows=%d error=%s", len(self._pending), error)
