"""FAQ entries as loaded by `bangdaiban seed` / `bangdaiban faq import`."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FaqEntry, FaqSynonyms


async def entries(session: AsyncSession) -> list[FaqEntry]:
    return list((await session.scalars(select(FaqEntry).order_by(FaqEntry.id))).all())


async def synonyms(session: AsyncSession) -> list[list[str]]:
    rows = await session.scalars(select(FaqSynonyms).order_by(FaqSynonyms.id))
    return [list(row.terms) for row in rows]


async def version(session: AsyncSession) -> tuple[int, str, int]:
    """Changes whenever `seed` or `faq import` writes entries or synonyms."""
    count, updated = (
        await session.execute(select(func.count(FaqEntry.id), func.max(FaqEntry.updated_at)))
    ).one()
    synonyms_id = await session.scalar(select(func.max(FaqSynonyms.id)))
    return int(count), str(updated), int(synonyms_id or 0)
