"""The transactional outbox: notifications written with the change that causes them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import Applicant, OutboxMessage, OutboxStatus, utcnow

UNREACHABLE = "recipient unreachable"
ERROR_LENGTH = 300  # outbox.last_error column size


@dataclass(frozen=True)
class Recipient:
    channel: str
    chat_id: str


def enqueue(
    session: AsyncSession,
    recipient: Recipient,
    text: str,
    key: str,
    buttons: list[list[dict[str, str]]] | None = None,
    document: dict[str, Any] | None = None,
    announcement_id: int | None = None,
) -> OutboxMessage:
    """Add one notification to the caller's transaction; `key` makes it unique."""
    message = OutboxMessage(
        announcement_id=announcement_id,
        idempotency_key=key,
        channel=recipient.channel,
        chat_id=recipient.chat_id,
        text=text,
        buttons=buttons or [],
        document=document,
    )
    session.add(message)
    return message


async def claim(
    session: AsyncSession, limit: int, now: dt.datetime | None = None, channel: str | None = None
) -> list[OutboxMessage]:
    """Lock due rows for this worker; other workers skip them (PostgreSQL)."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= (now or utcnow()),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    return list((await session.scalars(query)).all())


async def pending_for(session: AsyncSession, recipient: Recipient) -> list[OutboxMessage]:
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.channel == recipient.channel,
            OutboxMessage.chat_id == recipient.chat_id,
        )
        .order_by(OutboxMessage.id)
    )
    return list((await session.scalars(query)).all())


async def claim_for_chats(
    session: AsyncSession, channel: str, chat_ids: set[str], limit: int = 100
) -> list[OutboxMessage]:
    """Lock the pending rows of these chats in order (a web process claims only the chats
    connected to it); rows locked by another process are skipped."""
    if not chat_ids:
        return []
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.chat_id.in_(chat_ids),
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def by_ids(session: AsyncSession, chat_id: str, ids: list[int]) -> list[OutboxMessage]:
    """These rows of one chat, in order (another web process delivered them)."""
    if not ids:
        return []
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.chat_id == chat_id)
        .order_by(OutboxMessage.id)
    )
    return list((await session.scalars(query)).all())


# Built once (every outbox batch runs them): SQLAlchemy reuses its cache key instead of
# rebuilding each statement and hashing it per batch.
_MARK_SENT = (
    update(OutboxMessage)
    .where(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
    .values(status=OutboxStatus.SENT, sent_at=bindparam("now", type_=OutboxMessage.sent_at.type))
    .execution_options(synchronize_session=False)
)


async def mark_sent(session: AsyncSession, ids: list[int]) -> None:
    if ids:
        await session.execute(_MARK_SENT, {"ids": ids, "now": utcnow()})


# -- delivery bookkeeping (the worker in bot/outbox.py) -----------------------------------


# "The chat's oldest pending row" as a correlated min() rather than NOT EXISTS: PostgreSQL
# runs it as one index probe per candidate (ix_outbox_chat_queue) and cannot turn it into
# an anti-join, which with stale statistics or a generic plan scanned every pending row
# of the channel for each candidate (~1 s per batch at 2,000 pending rows).
_EARLIER = aliased(OutboxMessage)
_HEAD_OF_CHAT = (
    select(func.min(_EARLIER.id))
    .where(
        _EARLIER.channel == OutboxMessage.channel,
        _EARLIER.chat_id == OutboxMessage.chat_id,
        _EARLIER.status == OutboxStatus.PENDING,
    )
    .scalar_subquery()
)
_CLAIM_DUE = (
    select(OutboxMessage)
    .where(
        OutboxMessage.channel == bindparam("channel"),
        OutboxMessage.status == OutboxStatus.PENDING,
        OutboxMessage.next_attempt_at <= bindparam("now"),
        OutboxMessage.id == _HEAD_OF_CHAT,
    )
    .order_by(OutboxMessage.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=OutboxMessage)
)
_UNREACHABLE = select(Applicant.chat_id).where(
    Applicant.channel == bindparam("channel"),
    Applicant.chat_id.in_(bindparam("chat_ids", expanding=True)),
    Applicant.unreachable.is_(True),
)


async def claim_due(
    session: AsyncSession, channel: str, limit: int, now: dt.datetime | None = None
) -> list[OutboxMessage]:
    """Lock due rows, at most one per chat: the oldest pending one, so each chat gets its
    notices in order even with several workers; rows locked elsewhere are skipped."""
    params = {"channel": channel, "now": now or utcnow(), "limit": limit}
    return list((await session.scalars(_CLAIM_DUE, params)).all())


async def unreachable_chats(session: AsyncSession, channel: str, chat_ids: set[str]) -> set[str]:
    """The chats among `chat_ids` whose applicant has blocked the bot."""
    if not chat_ids:
        return set()
    params = {"channel": channel, "chat_ids": list(chat_ids)}
    return set((await session.scalars(_UNREACHABLE, params)).all())


async def mark_unreachable(session: AsyncSession, recipient: Recipient) -> bool:
    """Flag the applicant of this chat as unreachable (blocked the bot); False if none.

    Staff have no such flag: their notices keep failing into DEAD rows, which the log shows."""
    result = await session.execute(
        update(Applicant)
        .where(Applicant.channel == recipient.channel, Applicant.chat_id == recipient.chat_id)
        .values(unreachable=True)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def mark_dead(session: AsyncSession, ids: list[int], error: str) -> None:
    """Give up on these rows for good."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status=OutboxStatus.DEAD, last_error=error[:ERROR_LENGTH])
            .execution_options(synchronize_session=False)
        )


async def reschedule(
    session: AsyncSession, message_id: int, at: dt.datetime, error: str, count_attempt: bool
) -> None:
    """Try this row again at `at`; a rate limit (429) does not count as a failed attempt."""
    values: dict[str, Any] = {"next_attempt_at": at, "last_error": error[:ERROR_LENGTH]}
    if count_attempt:
        values["attempts"] = OutboxMessage.attempts + 1
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def record_failure(
    session: AsyncSession, message_id: int, error: str, retry_at: dt.datetime | None
) -> None:
    """Count a failed attempt; `retry_at` None means it was the last one (DEAD)."""
    values: dict[str, Any] = {
        "attempts": OutboxMessage.attempts + 1,
        "last_error": error[:ERROR_LENGTH],
    }
    if retry_at is None:
        values["status"] = OutboxStatus.DEAD
    else:
        values["next_attempt_at"] = retry_at
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
