"""Figures for monitoring (bot/ops.py /metrics): read-only aggregate queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Case, OutboxMessage, OutboxStatus, Question, QuestionStatus

ESCALATED = 2  # domain/reminders.py: the question went past its time limit to the chief


@dataclass(frozen=True)
class ChannelOutbox:
    channel: str
    pending: int
    oldest_pending: dt.datetime | None
    dead: int


async def outbox_by_channel(session: AsyncSession) -> list[ChannelOutbox]:
    """Pending rows, the oldest pending row's creation time and DEAD rows per channel."""
    pending = select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at)).where(
        OutboxMessage.status == OutboxStatus.PENDING
    )
    dead = select(OutboxMessage.channel, func.count()).where(
        OutboxMessage.status == OutboxStatus.DEAD
    )
    waiting = {
        row[0]: (int(row[1]), row[2])
        for row in await session.execute(pending.group_by(OutboxMessage.channel))
    }
    given_up = {
        row[0]: int(row[1]) for row in await session.execute(dead.group_by(OutboxMessage.channel))
    }
    return [
        ChannelOutbox(channel, *waiting.get(channel, (0, None)), given_up.get(channel, 0))
        for channel in sorted(waiting.keys() | given_up.keys())
    ]


async def cases_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Case.status, func.count()).group_by(Case.status))
    return {str(status): int(count) for status, count in rows}


async def questions_past_sla(session: AsyncSession) -> int:
    """Unanswered questions that went past the first responder's time limit."""
    query = select(func.count()).where(
        Question.status.in_([QuestionStatus.OPEN, QuestionStatus.FORWARDED]),
        Question.escalation_level >= ESCALATED,
    )
    return int(await session.scalar(query) or 0)
