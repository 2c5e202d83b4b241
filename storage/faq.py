"""FAQ entries as loaded by `bangdaiban seed` / `bangdaiban faq import`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FaqEntry, FaqSynonyms


async def entries(session: AsyncSession) -> list[FaqEntry]:
    return list((await session.scalars(select(FaqEntry).order_by(FaqEntry.id))).all())


async def synonyms(session: AsyncSession) -> list[list[str]]:
    rows = await session.scalars(select(FaqSynonyms).order_by(FaqSynonyms.id))
    return [list(row.terms) for row in rows]
