"""Leases: a named job held by one process until it stops renewing it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Lease, utcnow


async def acquire(
    session: AsyncSession, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """Take or renew the lease `name` for `ttl`; False while another holder's is unexpired.

    The UPDATE is decided under the row's write lock, so of two processes racing for an
    expired lease exactly one sees its condition still true."""
    now = now or utcnow()
    renewed = await session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if getattr(renewed, "rowcount", 0):
        return True
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    created = await session.execute(
        insert(Lease)
        .values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return bool(getattr(created, "rowcount", 0))


async def release(session: AsyncSession, name: str, holder: str) -> None:
    """Give the lease up at once (a clean stop), so another process need not wait for it."""
    await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


async def holder_of(session: AsyncSession, name: str, now: dt.datetime | None = None) -> str | None:
    """Who holds `name` now, or None."""
    query = select(Lease.holder).where(Lease.name == name, Lease.expires_at > (now or utcnow()))
    return await session.scalar(query)
