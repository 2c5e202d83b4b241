"""The outbox delivery worker: pending notifications out to a channel, with retries.

Exactly-once as far as the database can promise it: a row is sent only by the worker that
holds its row lock (SELECT … FOR UPDATE SKIP LOCKED) and is marked SENT in that same
transaction. The residual at-least-once window is a crash (or lost connection) between the
channel accepting a message and the COMMIT: the lock is released with the row still PENDING
and another worker sends it again. The window is kept short: batches are small, their sends
run concurrently (at most one row per chat, so the batch takes one round trip, not N), and
the commit follows immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import Settings
from handlers.events import Button, Document
from storage import outbox
from storage.db import Database
from storage.models import OutboxMessage, utcnow
from storage.outbox import Recipient

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The channel asks us to slow down (Telegram 429); not a failed attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


class Unreachable(Exception):
    """The recipient blocked the bot or no longer exists (Telegram 403)."""


class Rejected(Exception):
    """The channel refuses this message for good (Telegram 400); retrying cannot help."""


class Sender(Protocol):
    """Delivers one notification; raises RetryLater, Unreachable, Rejected or anything else
    (a transient failure, retried with backoff)."""

    async def send(
        self,
        chat_id: str,
        text: str,
        buttons: list[list[Button]],
        document: Document | None,
    ) -> None: ...


DocumentResolver = Callable[[dict[str, Any]], Awaitable[Document | None]]


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 20
    poll_interval: float = 1.0
    max_attempts: int = 8
    backoff_base: float = 5.0  # seconds before the 2nd attempt, doubling after
    backoff_cap: float = 3600.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one row; `sent` rows are marked SENT, the rest as described."""

    sent: bool = False
    retry_after: float | None = None  # 429: reschedule without counting an attempt
    unreachable: bool = False
    permanent: bool = False
    error: str = ""


class OutboxWorker:
    """Claims due rows of one channel in small locked batches and sends them."""

    def __init__(
        self,
        db: Database,
        sender: Sender,
        channel: str,
        resolve: DocumentResolver | None = None,
        config: WorkerConfig | None = None,
    ) -> None:
        self.db, self.sender, self.channel = db, sender, channel
        self.resolve = resolve
        self.config = config or WorkerConfig()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in hand is finished first."""
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.run_once()
                failures = 0
            except Exception as exc:  # the database is down: wait and try again
                failures += 1
                handled = 0
                log.warning("outbox batch failed error=%s", type(exc).__name__)
            if handled:
                continue
            pause = self.config.poll_interval * min(2**failures, 30)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def run_once(self) -> int:
        """Claim, send and record one batch; returns how many rows it held."""
        async with self.db.transaction() as session:
            rows = await outbox.claim_due(session, self.channel, self.config.batch_size)
            if not rows:
                return 0
            blocked = await outbox.unreachable_chats(
                session, self.channel, {r.chat_id for r in rows}
            )
            # claim_due holds at most one row per chat, so the sends can run side by side.
            outcomes = await asyncio.gather(
                *(
                    self._attempt(row) if row.chat_id not in blocked else _skip_unreachable()
                    for row in rows
                )
            )
            # Every write comes after the sends: SQLite then never holds its write lock
            # while a document is rendered (which writes the stored copy).
            pairs = list(zip(rows, outcomes, strict=True))
            await outbox.mark_sent(session, [row.id for row, outcome in pairs if outcome.sent])
            for row, outcome in pairs:
                await self._record(session, row, outcome)
        return len(rows)

    async def _attempt(self, row: OutboxMessage) -> Outcome:
        try:
            document = await self._document(row.document)
            await self.sender.send(row.chat_id, row.text, _buttons(row.buttons), document)
        except RetryLater as exc:
            return Outcome(retry_after=exc.seconds, error=str(exc))
        except Unreachable as exc:
            return Outcome(unreachable=True, error=f"unreachable: {exc}")
        except Rejected as exc:
            return Outcome(permanent=True, error=f"rejected: {exc}")
        except Exception as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        return Outcome(sent=True)

    async def _record(self, session: Any, row: OutboxMessage, outcome: Outcome) -> None:
        if outcome.sent:
            return
        now = utcnow()
        if outcome.retry_after is not None:
            at = now + dt.timedelta(seconds=outcome.retry_after)
            await outbox.reschedule(session, row.id, at, outcome.error, count_attempt=False)
            log.info("outbox rate limited id=%s retry_after=%s", row.id, outcome.retry_after)
        elif outcome.unreachable:
            if outcome.error != outbox.UNREACHABLE:  # a fresh 403, not an earlier one
                await outbox.mark_unreachable(session, Recipient(row.channel, row.chat_id))
            await outbox.mark_dead(session, [row.id], outcome.error)
            log.info("outbox recipient unreachable id=%s chat=%s", row.id, row.chat_id)
        elif outcome.permanent or row.attempts + 1 >= self.config.max_attempts:
            await outbox.record_failure(session, row.id, outcome.error, retry_at=None)
            log.warning("outbox message dead id=%s attempts=%s", row.id, row.attempts + 1)
        else:
            at = now + dt.timedelta(seconds=self.backoff(row.attempts + 1))
            await outbox.record_failure(session, row.id, outcome.error, retry_at=at)
            log.info("outbox retry id=%s attempts=%s", row.id, row.attempts + 1)

    def backoff(self, attempts: int) -> float:
        """Exponential delay after `attempts` failures, with jitter so workers spread out."""
        delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** (attempts - 1))
        return delay * random.uniform(0.8, 1.2)

    async def _document(self, spec: dict[str, Any] | None) -> Document | None:
        """The row's document, made now (the core renders it; see handlers/documents.py)."""
        if not spec or self.resolve is None:
            return None
        document = await self.resolve(spec)
        if document is None:  # as the console does: the notice goes out without it
            log.warning("outbox document unavailable kind=%s", spec.get("render"))
        return document


async def _skip_unreachable() -> Outcome:
    return Outcome(unreachable=True, error=outbox.UNREACHABLE)


def _buttons(rows: Sequence[Any]) -> list[list[Button]]:
    return [[Button(str(b["label"]), str(b["data"])) for b in row] for row in rows]


async def work(settings: Settings) -> None:
    """`bangdaiban worker`: deliver the Telegram outbox until SIGTERM/SIGINT."""
    from bot import scheduler
    from bot.app import build_app
    from bot.channels.telegram import CHANNEL, TelegramSender, build_bot
    from handlers import documents

    app = await build_app(settings)
    bot = build_bot(settings)

    async def resolve(spec: dict[str, Any]) -> Document | None:
        return await documents.resolve(app.services, spec)

    worker = OutboxWorker(app.services.db, TelegramSender(bot), CHANNEL, resolve)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("outbox worker started channel=%s", CHANNEL)
    try:
        await asyncio.gather(worker.run(stop), scheduler.run(app.services, stop))
    finally:
        await bot.session.close()
        await app.close()
        log.info("outbox worker stopped")
