"""The outbox delivery worker: pending notifications out to a channel, with retries.

Exactly-once as far as the database can promise it: a row is sent only by the worker that
holds its row lock (SELECT … FOR UPDATE SKIP LOCKED) and is marked SENT in that same
transaction. The residual at-least-once window is a crash (or lost connection) between the
channel accepting a message and the COMMIT: the lock is released with the row still PENDING
and another worker sends it again. The window is kept short: batches are small, their sends
run concurrently (at most one row per chat, so the batch takes one round trip, not N), and
the commit follows immediately.

Pacing: before sending, the worker asks the send limiter (storage/ratelimit.py) for a slot
per row — at most `send_rate_per_second` in total across every worker, one per second per
chat. A granted row waits for its slot (at most the limiter's horizon, half a second) and is
sent; a row whose chat had a message less than a second ago is rescheduled for when the chat
is free, so it never holds up other chats; rows beyond the booked horizon are released
untouched and the worker sleeps until slots free up. A 429 reschedules its row after
`retry_after` and pauses the global limiter for as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import Settings
from chat.events import Button, Document
from dialogs.fit import plain, split_html
from dialogs.texts import render
from domain import cases, notices
from services import metrics
from storage import outbox
from storage.db import Database
from storage.models import OutboxMessage, utcnow
from storage.outbox import Recipient
from storage.ratelimit import (
    Grant,
    MemorySendLimiter,
    Permit,
    RedisSendLimiter,
    SendLimiter,
    UnlimitedSendLimiter,
)
from storage.state import StateStore

log = logging.getLogger(__name__)
CHAT_SPACING = "waiting for the chat's spacing"
# The row a Sender is delivering, for senders that choose by notice kind (WeChat templates).
delivering: ContextVar[OutboxMessage | None] = ContextVar("delivering", default=None)


class RetryLater(Exception):
    """The channel asks us to slow down (Telegram 429); not a failed attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


class Unreachable(Exception):
    """The recipient blocked the bot or no longer exists (Telegram 403)."""


class Rejected(Exception):
    """The channel refuses this message for good (Telegram 400); retrying cannot help."""


class Undeliverable(Rejected):
    """The channel cannot carry any message to this chat now (WeChat outside the 48-hour
    window with no template): plain text or an apology would be refused alike."""


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
    batch_size: int = 50  # rows claimed per transaction; the sends of a batch run at once
    poll_interval: float = 1.0
    max_attempts: int = 8
    backoff_base: float = 5.0  # seconds before the 2nd attempt, doubling after
    backoff_cap: float = 3600.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one row; `sent` rows are marked SENT, the rest as described."""

    sent: bool = False
    retry_after: float | None = None  # 429 or chat spacing: reschedule, not an attempt
    held: bool = False  # not tried (global rate booked): released as it was
    unreachable: bool = False
    permanent: bool = False
    undeliverable: bool = False  # no channel form can reach the person: staff are told
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
        limiter: SendLimiter | None = None,
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.db, self.sender, self.channel = db, sender, channel
        self.resolve = resolve
        self.config = config or WorkerConfig()
        self.limiter = limiter or UnlimitedSendLimiter()
        # Asked before each batch; False: another process delivers this channel (a lease).
        self.gate = gate
        self._resume_at = 0.0  # loop time before which the global rate is booked up
        self._paused_until = 0.0  # loop time until which a 429 seen here stops sends
        self.fallbacks = 0  # refused messages delivered as plain text
        self.apologies = 0  # refused messages replaced by the apology

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the batch in hand is finished first."""
        failures = 0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            booked = self._resume_at - loop.time()
            if booked > 0:  # no slot free: sleep instead of claiming rows we cannot send
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), booked)
                continue
            if self.gate is not None and not await self.gate():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval)
                continue
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
            sendable = [row for row in rows if row.chat_id not in blocked]
            granted = await self.limiter.reserve([f"{r.channel}:{r.chat_id}" for r in sendable])
            permits = dict(zip((row.id for row in sendable), granted, strict=True))
            # claim_due holds at most one row per chat, so the sends can run side by side.
            outcomes = await asyncio.gather(
                *(self._deliver(row, permits.get(row.id)) for row in rows)
            )
            # Every write comes after the sends: SQLite then never holds its write lock
            # while a document is rendered (which writes the stored copy).
            pairs = list(zip(rows, outcomes, strict=True))
            await outbox.mark_sent(session, [row.id for row, outcome in pairs if outcome.sent])
            for row, outcome in pairs:
                await self._record(session, row, outcome)
        return len(rows)

    async def _deliver(self, row: OutboxMessage, permit: Permit | None) -> Outcome:
        """Send the row in its slot, or say why not (`permit` None: the chat is blocked)."""
        loop = asyncio.get_running_loop()
        if permit is None:
            return Outcome(unreachable=True, error=outbox.UNREACHABLE)
        if permit.grant is Grant.FULL:
            self._resume_at = max(self._resume_at, loop.time() + permit.seconds)
            return Outcome(held=True)
        if permit.grant is Grant.CHAT_BUSY:
            return Outcome(retry_after=permit.seconds, error=CHAT_SPACING)
        if permit.seconds > 0:
            await asyncio.sleep(permit.seconds)
        paused = self._paused_until - loop.time()
        if paused > 0:  # a 429 came back while this row waited for its slot
            return Outcome(retry_after=paused, error=f"paused {paused:.1f}s after a 429")
        return await self._attempt(row)

    async def _attempt(self, row: OutboxMessage) -> Outcome:
        delivering.set(row)  # each row's delivery runs in its own task (gather): no reset
        try:
            document = await self._document(row.document)
            await self.sender.send(row.chat_id, row.text, _buttons(row.buttons), document)
        except RetryLater as exc:
            await self._pause(exc.seconds)
            return Outcome(retry_after=exc.seconds, error=str(exc))
        except Unreachable as exc:
            return Outcome(unreachable=True, error=f"unreachable: {exc}")
        except Undeliverable as exc:
            return Outcome(permanent=True, undeliverable=True, error=f"undeliverable: {exc}")
        except Rejected as exc:
            return await self._fall_back(row, document, str(exc))
        except Exception as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        return Outcome(sent=True)

    async def _fall_back(self, row: OutboxMessage, document: Document | None, why: str) -> Outcome:
        """Refused for good (400): the text without markup, in parts that fit; if even that
        is refused, a short apology saying where to look. Nothing is dropped unsaid."""
        parts = split_html(plain(row.text))
        try:
            for index, part in enumerate(parts, start=1):
                last = index == len(parts)
                buttons = _buttons(row.buttons) if last else []
                await self.sender.send(row.chat_id, part, buttons, document if last else None)
            self.fallbacks += 1
            metrics.REFUSED.labels(self.channel, "notice", "plain").inc()
            log.warning(
                "outbox sent as plain text id=%s chat=%s parts=%s", row.id, row.chat_id, len(parts)
            )
            return Outcome(sent=True)
        except Rejected:
            pass
        except Exception as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        try:
            await self.sender.send(row.chat_id, render("common/undeliverable.j2"), [], None)
        except Exception as exc:
            metrics.REFUSED.labels(self.channel, "notice", "nothing").inc()
            log.error("outbox message refused id=%s chat=%s", row.id, row.chat_id)
            return Outcome(permanent=True, error=f"rejected: {why}; apology: {exc}")
        self.apologies += 1
        metrics.REFUSED.labels(self.channel, "notice", "apology").inc()
        log.warning("outbox message replaced by an apology id=%s chat=%s", row.id, row.chat_id)
        return Outcome(permanent=True, error=f"rejected: {why}; apology sent")

    async def _pause(self, seconds: float) -> None:
        """Telegram said 429: no more sends from anyone for `seconds`."""
        metrics.RATE_LIMITED.labels(self.channel).inc()
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)
        try:
            await self.limiter.pause(seconds)
        except Exception as exc:  # the row is rescheduled anyway; pausing is best effort
            log.warning("send limiter pause failed error=%s", type(exc).__name__)

    async def _record(self, session: Any, row: OutboxMessage, outcome: Outcome) -> None:
        metrics.REPLIES.labels(self.channel, _outcome_label(outcome, row, self.config)).inc()
        if outcome.sent or outcome.held:
            return
        now = utcnow()
        if outcome.retry_after is not None:
            at = now + dt.timedelta(seconds=outcome.retry_after)
            await outbox.reschedule(session, row.id, at, outcome.error, count_attempt=False)
            if outcome.error == CHAT_SPACING:
                log.debug("outbox chat spacing id=%s wait=%.2f", row.id, outcome.retry_after)
            else:
                log.info("outbox rate limited id=%s retry_after=%s", row.id, outcome.retry_after)
        elif outcome.unreachable:
            if outcome.error != outbox.UNREACHABLE:  # a fresh 403, not an earlier one
                await outbox.mark_unreachable(session, Recipient(row.channel, row.chat_id))
            await outbox.mark_dead(session, [row.id], outcome.error)
            log.info("outbox recipient unreachable id=%s chat=%s", row.id, row.chat_id)
        elif outcome.permanent or row.attempts + 1 >= self.config.max_attempts:
            await outbox.record_failure(session, row.id, outcome.error, retry_at=None)
            log.warning("outbox message dead id=%s attempts=%s", row.id, row.attempts + 1)
            if outcome.undeliverable:  # in this transaction: the staff notice is not lost
                told = await cases.undelivered_notices(session, row.idempotency_key, row.id)
                notices.enqueue(session, told)
        else:
            at = now + dt.timedelta(seconds=self.backoff(row.attempts + 1))
            await outbox.record_failure(session, row.id, outcome.error, retry_at=at)
            log.info("outbox retry id=%s attempts=%s", row.id, row.attempts + 1)

    def backoff(self, attempts: int) -> float:
        """Exponential delay after `attempts` failures, with jitter so workers spread out."""
        delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** (attempts - 1))
        return delay * random.uniform(0.8, 1.2)

    async def _document(self, spec: dict[str, Any] | None) -> Document | None:
        """The row's document, made now (the core renders it; see services/documents.py)."""
        if not spec or self.resolve is None:
            return None
        document = await self.resolve(spec)
        if document is None:  # as the console does: the notice goes out without it
            log.warning("outbox document unavailable kind=%s", spec.get("render"))
        return document


def _outcome_label(outcome: Outcome, row: OutboxMessage, config: WorkerConfig) -> str:
    """The outcome as counted in bdb_replies_total."""
    if outcome.sent:
        return "sent"
    if outcome.held or outcome.error == CHAT_SPACING:
        return "waiting"
    if outcome.retry_after is not None:
        return "rate_limited"
    if outcome.unreachable:
        return "unreachable"
    if outcome.permanent or row.attempts + 1 >= config.max_attempts:
        return "dead"
    return "retry"


def _buttons(rows: Sequence[Any]) -> list[list[Button]]:
    return [[Button(str(b["label"]), str(b["data"])) for b in row] for row in rows]


def build_send_limiter(settings: Settings, state: StateStore) -> SendLimiter:
    """Telegram's limits for every worker: in Redis when the state store is there."""
    if state.redis is not None:  # share the app's one bounded pool
        return RedisSendLimiter(state.redis, settings.send_rate_per_second, prefix=state.prefix)
    return MemorySendLimiter(settings.send_rate_per_second)
