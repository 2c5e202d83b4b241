"""Applicants: enterprises' chat identities."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Applicant, utcnow

# Built once: SQLAlchemy then reuses its cache key instead of rebuilding the statement and
# hashing it on every call (≈ 0.2 ms of CPU per call on the per-message path).
_FIND = select(Applicant).where(
    Applicant.channel == bindparam("channel"), Applicant.chat_id == bindparam("chat_id")
)


_FIND_LOCKED = _FIND.with_for_update(of=Applicant)


async def find(
    session: AsyncSession, channel: str, chat_id: str, lock: bool = False
) -> Applicant | None:
    """The applicant of this chat; `lock` holds the row until the transaction ends."""
    return await session.scalar(
        _FIND_LOCKED if lock else _FIND, {"channel": channel, "chat_id": chat_id}
    )


async def get_or_create(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    display_name: str | None = None,
    lock: bool = False,
) -> Applicant:
    """The applicant of this chat, created on first use; a concurrent insert is harmless.
    `lock` holds its row until the transaction ends, read in the same statement."""
    existing = await find(session, channel, chat_id, lock)
    if existing is not None:
        if existing.unreachable:  # they wrote to us, so they can be reached again
            existing.unreachable = False
        return existing
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Applicant)
        .values(
            channel=channel,
            chat_id=chat_id,
            display_name=display_name,
            topics=[],
            unreachable=False,
            subscribed=False,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["channel", "chat_id"])
    )
    created = await find(session, channel, chat_id, lock)
    assert created is not None
    return created


async def set_subscribed(session: AsyncSession, applicant: Applicant, subscribed: bool) -> None:
    applicant.subscribed = subscribed


async def tag_source(session: AsyncSession, channel: str, chat_id: str, source: str) -> None:
    """Remember where an applicant first came from (a QR code's tag); the first tag stays."""
    applicant = await get_or_create(session, channel, chat_id)
    if applicant.source is None:
        applicant.source = source
