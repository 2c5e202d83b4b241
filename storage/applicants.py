"""Applicants: enterprises' chat identities."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Applicant


async def find(session: AsyncSession, channel: str, chat_id: str) -> Applicant | None:
    return await session.scalar(
        select(Applicant).where(Applicant.channel == channel, Applicant.chat_id == chat_id)
    )


async def get_or_create(
    session: AsyncSession, channel: str, chat_id: str, display_name: str | None = None
) -> Applicant:
    """The applicant of this chat, created on first use (safe against a concurrent insert)."""
    existing = await find(session, channel, chat_id)
    if existing is not None:
        return existing
    try:
        async with session.begin_nested():
            applicant = Applicant(channel=channel, chat_id=chat_id, display_name=display_name)
            session.add(applicant)
        return applicant
    except IntegrityError:
        found = await find(session, channel, chat_id)
        assert found is not None
        return found


async def set_subscribed(session: AsyncSession, applicant: Applicant, subscribed: bool) -> None:
    applicant.subscribed = subscribed
