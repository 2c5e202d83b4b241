"""The months whose 工作简报 was sent, and the people it goes to."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Department, MonthlyReport, Role, Staff


async def claim(session: AsyncSession, month: str, now: dt.datetime) -> MonthlyReport | None:
    """Mark `month` as sent in the caller's transaction; None if it already was. Of two
    workers racing, the second's insert waits on the first's row and then does nothing."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    created = await session.execute(
        insert(MonthlyReport)
        .values(month=month, sent_at=now, recipients=0)
        .on_conflict_do_nothing(index_elements=["month"])
    )
    if not getattr(created, "rowcount", 0):
        return None
    return await session.get(MonthlyReport, month)


async def lead_unit_admins(session: AsyncSession) -> list[Staff]:
    """Active administrators of the lead units (roster.yaml: leading), in roster order."""
    query = (
        select(Staff)
        .join(Department)
        .where(Department.leading.is_(True), Staff.role == Role.ADMIN, Staff.active.is_(True))
        .order_by(Department.sort, Staff.id)
    )
    return list((await session.scalars(query)).all())
