"""A staff member's appointments of a day or a week: the 预约洽谈 their unit attends, the
上门服务 it goes on and the 联席会议 it is invited to (the window sees all of them). One
answer for /appointments in the chat and the 今日/本周预约 section of /desk, so both show
the same thing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain import policy
from domain.policy import Actor
from services.workdays import CHINA
from storage import bookings, meetings, visits
from storage.models import Booking, Meeting, Visit


@dataclass(frozen=True)
class Agenda:
    week: bool
    start: dt.datetime  # China midnight of the first day
    end: dt.datetime  # China midnight after the last day
    bookings: list[Booking]
    visits: list[Visit]
    meetings: list[Meeting]

    @property
    def last(self) -> dt.datetime:
        return self.end - dt.timedelta(days=1)

    @property
    def empty(self) -> bool:
        return not (self.bookings or self.visits or self.meetings)


def span(now: dt.datetime, week: bool) -> tuple[dt.datetime, dt.datetime]:
    """Today, or this week from Monday to Sunday, in China time."""
    today = now.astimezone(CHINA).date()
    first = today - dt.timedelta(days=today.weekday()) if week else today
    last = first + dt.timedelta(days=6 if week else 0)
    start = dt.datetime.combine(first, dt.time(0), CHINA)
    return start, dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), CHINA)


async def agenda(
    session: AsyncSession, actor: Actor, department_id: int | None, now: dt.datetime, week: bool
) -> Agenda:
    """What this staff member's unit attends in the span; the window (and admins) see all."""
    start, end = span(now, week)
    unit = None if policy.is_window(actor) else department_id
    return Agenda(
        week,
        start,
        end,
        await bookings.between(session, start, end, unit),
        await visits.between(session, start, end, unit),
        await meetings.between(session, start, end, unit),
    )
