"""The web chat's conversation history: the last messages of each chat, both directions."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WebMessage

KEEP = 200  # messages per chat shown after a reload


def append(session: AsyncSession, chat_id: str, payloads: list[dict[str, Any]]) -> None:
    """Add messages to the chat's history in the caller's transaction."""
    session.add_all(WebMessage(chat_id=chat_id, payload=payload) for payload in payloads)


async def append_many(session: AsyncSession, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Add many chats' messages, (chat id, payload) each, in one INSERT: no ORM objects (their
    unit of work was a sixth of a web message's CPU)."""
    if messages:
        rows = [{"chat_id": chat_id, "payload": payload} for chat_id, payload in messages]
        await session.execute(insert(cast(Table, WebMessage.__table__)), rows)


async def recent(session: AsyncSession, chat_id: str, limit: int = KEEP) -> list[dict[str, Any]]:
    """The chat's last `limit` messages, oldest first."""
    query = (
        select(WebMessage.payload)
        .where(WebMessage.chat_id == chat_id)
        .order_by(WebMessage.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.scalars(query)).all()))


async def prune(session: AsyncSession, chat_id: str, keep: int = KEEP) -> None:
    """Forget all but the chat's last `keep` messages."""
    oldest_kept = await session.scalar(
        select(WebMessage.id)
        .where(WebMessage.chat_id == chat_id)
        .order_by(WebMessage.id.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        await session.execute(
            delete(WebMessage)
            .where(WebMessage.chat_id == chat_id, WebMessage.id < oldest_kept)
            .execution_options(synchronize_session=False)
        )
