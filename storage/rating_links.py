"""One-time rating links: issued with a random token (only its hash is stored), found while
unspent and unexpired, spent once."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Case, RatingLink

TOKEN_BYTES = 18  # 144 random bits; 24 URL-safe characters
MAX_TOKEN = 64  # characters of a token taken from a URL before it is hashed


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: AsyncSession, case_id: int, now: dt.datetime, ttl: dt.timedelta) -> str:
    """A new link's token for the case, in the caller's transaction."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(RatingLink(case_id=case_id, token_hash=_hash(token), created_at=now,
                           expires_at=now + ttl))  # fmt: skip
    return token


async def live_count(session: AsyncSession, case_id: int, now: dt.datetime) -> int:
    """The case's links still usable (unspent, unexpired): what the per-case cap counts."""
    query = select(func.count()).where(
        RatingLink.case_id == case_id, RatingLink.used_at.is_(None), RatingLink.expires_at > now
    )
    return int(await session.scalar(query) or 0)


async def find(session: AsyncSession, token: str) -> tuple[RatingLink, Case] | None:
    """The link a token names and its case, spent or not; None for a token never issued."""
    if not token or len(token) > MAX_TOKEN:
        return None
    query = (
        select(RatingLink, Case)
        .join(Case, Case.id == RatingLink.case_id)
        .where(RatingLink.token_hash == _hash(token))
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def spend(session: AsyncSession, link_id: int, now: dt.datetime) -> bool:
    """Mark the link used; False if it was spent or expired meanwhile (decided under the
    row's write lock, so of two submissions exactly one spends it)."""
    spent = await session.execute(
        update(RatingLink)
        .where(RatingLink.id == link_id, RatingLink.used_at.is_(None), RatingLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(spent, "rowcount", 0))
