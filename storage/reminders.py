"""The two reminders (the working day before, one hour before) of bookings, visits and
meetings: one query finds what still has one to send."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Booking, Meeting, Visit

Remindable = TypeVar("Remindable", Booking, Visit, Meeting)


async def candidates(
    session: AsyncSession,
    model: type[Remindable],
    conditions: tuple[ColumnElement[bool], ...],
    until: dt.datetime,
    now: dt.datetime,
    limit: int,
    lock: bool,
) -> list[Remindable]:
    """Not yet started, starting before `until`, meeting `conditions`, with a reminder still
    unsent; locked rows are skipped so two schedulers never send the same reminder."""
    query = (
        select(model)
        .where(
            *conditions,
            model.starts_at > now,
            model.starts_at < until,
            or_(model.reminded_day_at.is_(None), model.reminded_hour_at.is_(None)),
        )
        .order_by(model.starts_at, model.id)
        .limit(limit)
    )
    if lock:
        query = query.with_for_update(of=model, skip_locked=True)
    return list((await session.scalars(query)).all())
