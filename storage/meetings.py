"""联席会议: meetings, their invited units, agenda items and decisions; every meeting query."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reminders
from storage.key_projects import JOINT_MEETING_UNITS
from storage.models import (
    ACTIVE_CASE_STATUSES,
    Booking,
    BookingStatus,
    Case,
    Department,
    KeyProject,
    Meeting,
    MeetingItem,
    MeetingStatus,
    MeetingUnit,
    Problem,
    Role,
    Staff,
)

LISTED = (MeetingStatus.CALLED, MeetingStatus.HELD)


async def create(
    session: AsyncSession,
    called_by: int,
    room_id: int,
    starts: Sequence[tuple[dt.datetime, dt.datetime]],
    unit_ids: Iterable[int],
    now: dt.datetime,
) -> Meeting:
    """The meeting and one booking row per room slot it holds: the slots' unique index
    raises IntegrityError when any of them is held (by a booking or another meeting)."""
    meeting = Meeting(
        number=f"new-{uuid.uuid4().hex[:16]}",
        called_by=called_by,
        room_id=room_id,
        starts_at=starts[0][0],
        ends_at=starts[-1][1],
        status=MeetingStatus.DRAFT,
        created_at=now,
        updated_at=now,
        units=[MeetingUnit(department_id=d) for d in dict.fromkeys(unit_ids)],
        items=[],
    )
    session.add(meeting)
    await session.flush()
    meeting.number = f"LX-{meeting.id:06d}"
    for index, (start, end) in enumerate(starts):
        session.add(
            Booking(
                number=f"{meeting.number}-{index + 1}",
                submission_key=f"meeting:{meeting.id}:{index}",
                room_id=room_id,
                starts_at=start,
                ends_at=end,
                status=BookingStatus.BOOKED,
                subject=meeting.number,
                contact_name="-",
                contact_phone="-",
                booked_by=called_by,
                meeting_id=meeting.id,
                created_at=now,
                updated_at=now,
            )
        )
    await session.flush()
    await session.refresh(meeting, ["room", "units", "items"])
    return meeting


async def by_number(session: AsyncSession, number: str, lock: bool = False) -> Meeting | None:
    query = select(Meeting).where(Meeting.number == number.strip().upper())
    if lock:
        query = query.with_for_update(of=Meeting).execution_options(populate_existing=True)
    return await session.scalar(query)


async def item(session: AsyncSession, item_id: int, lock: bool = False) -> MeetingItem | None:
    query = select(MeetingItem).where(MeetingItem.id == item_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def meeting_of(session: AsyncSession, item: MeetingItem) -> Meeting:
    found = await session.get(Meeting, item.meeting_id)
    assert found is not None
    return found


async def candidate_problems(session: AsyncSession, limit: int) -> list[tuple[Problem, KeyProject]]:
    """Open key-project problems, the highest level of the ladder first (L3: 联席会议)."""
    query = (
        select(Problem, KeyProject)
        .join(KeyProject, KeyProject.id == Problem.key_project_id)
        .where(Problem.status == "open")
        .order_by(Problem.level.desc(), Problem.level_since, Problem.id)
        .limit(limit)
    )
    return list((await session.execute(query)).tuples())


async def candidate_cases(session: AsyncSession, now: dt.datetime, limit: int) -> list[Case]:
    """Active cases past their time limit: the hard ones a meeting may 会诊."""
    query = (
        select(Case)
        .where(Case.status.in_(ACTIVE_CASE_STATUSES), Case.due_at < now)
        .order_by(Case.due_at, Case.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def units(session: AsyncSession) -> list[Department]:
    query = select(Department).where(Department.active.is_(True)).order_by(Department.sort)
    return list((await session.scalars(query)).all())


async def chiefs(session: AsyncSession, department_ids: Iterable[int]) -> list[Staff]:
    """The 首席责任人 of these units, who confirm who attends."""
    ids = list(department_ids)
    if not ids:
        return []
    query = (
        select(Staff)
        .where(Staff.department_id.in_(ids), Staff.role == Role.CHIEF, Staff.active.is_(True))
        .order_by(Staff.department_id, Staff.id)
    )
    return list((await session.scalars(query)).unique().all())


async def between(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    department_id: int | None = None,
    limit: int = 100,
) -> list[Meeting]:
    query = (
        select(Meeting)
        .where(Meeting.starts_at >= start, Meeting.starts_at < end, Meeting.status.in_(LISTED))
        .order_by(Meeting.starts_at, Meeting.id)
        .limit(limit)
    )
    if department_id is not None:
        invited = select(MeetingUnit.meeting_id).where(MeetingUnit.department_id == department_id)
        query = query.where(Meeting.id.in_(invited))
    return list((await session.scalars(query)).all())


async def reminder_candidates(
    session: AsyncSession, until: dt.datetime, now: dt.datetime, limit: int = 100
) -> list[Meeting]:
    called = (Meeting.status == MeetingStatus.CALLED,)
    return await reminders.candidates(session, Meeting, called, until, now, limit, lock=True)


async def lead_unit_ids(session: AsyncSession) -> list[int]:
    """The departments that call 联席会议 (JOINT_MEETING_UNITS)."""
    found = await session.scalars(
        select(Department.id).where(Department.code.in_(JOINT_MEETING_UNITS))
    )
    return list(found)


async def release_rooms(session: AsyncSession, meeting_id: int) -> None:
    """Cancel the room bookings that hold a meeting's slots."""
    held = await session.scalars(select(Booking).where(Booking.meeting_id == meeting_id))
    for booking in held:
        booking.status = BookingStatus.CANCELLED
