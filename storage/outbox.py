"""The transactional outbox: notifications written with the change that causes them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage, OutboxStatus, utcnow


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
) -> OutboxMessage:
    """Add one notification to the caller's transaction; `key` makes it unique."""
    message = OutboxMessage(
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


async def mark_sent(session: AsyncSession, ids: list[int]) -> None:
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status=OutboxStatus.SENT, sent_at=utcnow())
        )
