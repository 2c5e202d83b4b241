"""预约洽谈: rooms, bookings and the units asked to attend; every booking query lives here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reminders
from storage.models import (
    ACTIVE_CASE_STATUSES,
    Applicant,
    Booking,
    BookingStatus,
    BookingUnit,
    Case,
    CaseItem,
    CaseViewer,
    Department,
    KeyProject,
    KeyProjectMember,
    Role,
    Room,
    Staff,
    utcnow,
)

HOLDING = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.ABSENT)
ATTENDING_ROLES = (Role.CHIEF, Role.SPECIALIST, Role.WINDOW)


@dataclass(frozen=True)
class Topic:
    """Something of the applicant's a booking may be about: a case or a key project."""

    kind: str  # "case" or "kp"
    ref: str  # the case number or the key project's id
    title: str
    company: str


@dataclass(frozen=True)
class NewBooking:
    applicant_id: int | None
    submission_key: str
    room_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    subject: str
    company: str | None
    contact_name: str
    contact_phone: str
    created_at: dt.datetime
    case_id: int | None = None
    key_project_id: int | None = None
    booked_by: int | None = None


async def rooms(session: AsyncSession) -> list[Room]:
    query = select(Room).where(Room.active.is_(True)).order_by(Room.sort, Room.id)
    return list((await session.scalars(query)).all())


async def room(session: AsyncSession, room_id: int) -> Room | None:
    return await session.get(Room, room_id)


async def taken(
    session: AsyncSession, start: dt.datetime, end: dt.datetime
) -> set[tuple[int, dt.datetime]]:
    """(room, start) of every slot held between `start` and `end`."""
    query = select(Booking.room_id, Booking.starts_at).where(
        Booking.starts_at >= start,
        Booking.starts_at < end,
        Booking.status != BookingStatus.CANCELLED,
    )
    return {
        (room_id, starts.astimezone(dt.UTC)) for room_id, starts in await session.execute(query)
    }


async def create(session: AsyncSession, new: NewBooking) -> Booking:
    """Insert a booking; the slot's unique index raises IntegrityError if it is held."""
    booking = Booking(
        number=f"new-{uuid.uuid4().hex[:16]}",
        submission_key=new.submission_key,
        applicant_id=new.applicant_id,
        booked_by=new.booked_by,
        room_id=new.room_id,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        subject=new.subject,
        company=new.company,
        contact_name=new.contact_name,
        contact_phone=new.contact_phone,
        case_id=new.case_id,
        key_project_id=new.key_project_id,
        created_at=new.created_at,
        updated_at=new.created_at,
        units=[],
    )
    session.add(booking)
    await session.flush()
    booking.number = f"YY-{booking.id:06d}"  # 预约号: short enough to read out on the phone
    await session.flush()
    return booking


async def add_units(session: AsyncSession, booking: Booking, department_ids: Iterable[int]) -> None:
    for department_id in dict.fromkeys(department_ids):
        booking.units.append(BookingUnit(department_id=department_id))
    await session.flush()
    await session.refresh(booking, ["room", "units"])  # what the notices show


async def by_submission_key(
    session: AsyncSession, applicant_id: int | None, key: str
) -> Booking | None:
    query = select(Booking).where(Booking.submission_key == key)
    if applicant_id is None:
        query = query.where(Booking.applicant_id.is_(None))
    else:
        query = query.where(Booking.applicant_id == applicant_id)
    return await session.scalar(query)


async def by_number(session: AsyncSession, number: str, lock: bool = False) -> Booking | None:
    query = select(Booking).where(Booking.number == number.strip().upper())
    if lock:
        query = query.with_for_update(of=Booking).execution_options(populate_existing=True)
    return await session.scalar(query)


async def upcoming_for(
    session: AsyncSession, applicant_id: int, now: dt.datetime, limit: int = 20
) -> list[Booking]:
    query = (
        select(Booking)
        .where(
            Booking.applicant_id == applicant_id,
            Booking.status == BookingStatus.BOOKED,
            Booking.ends_at > now,
        )
        .order_by(Booking.starts_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def count_upcoming(session: AsyncSession, applicant_id: int, now: dt.datetime) -> int:
    return len(await upcoming_for(session, applicant_id, now, limit=1000))


async def between(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    department_id: int | None = None,
    limit: int = 200,
) -> list[Booking]:
    """Bookings (not cancelled) starting in [start, end); with a unit, those it attends."""
    query = (
        select(Booking)
        .where(
            Booking.starts_at >= start,
            Booking.starts_at < end,
            Booking.status != BookingStatus.CANCELLED,
            Booking.meeting_id.is_(None),  # a meeting's hold is listed as the meeting
        )
        .order_by(Booking.starts_at, Booking.room_id)
        .limit(limit)
    )
    if department_id is not None:
        attends = select(BookingUnit.booking_id).where(BookingUnit.department_id == department_id)
        query = query.where(Booking.id.in_(attends))
    return list((await session.scalars(query)).all())


async def reminder_candidates(
    session: AsyncSession, until: dt.datetime, now: dt.datetime, limit: int = 200
) -> list[Booking]:
    """Booked, not yet started, starting before `until`, with a reminder still unsent."""
    booked = (Booking.status == BookingStatus.BOOKED, Booking.meeting_id.is_(None))
    return await reminders.candidates(session, Booking, booked, until, now, limit, lock=False)


def touch(booking: Booking, now: dt.datetime | None = None) -> None:
    booking.updated_at = now or utcnow()


# -- topics and contacts of an applicant ---------------------------------------------------


def _visible_cases(applicant_id: int) -> ColumnElement[bool]:
    bound = select(CaseViewer.case_id).where(CaseViewer.applicant_id == applicant_id)
    return or_(Case.applicant_id == applicant_id, Case.id.in_(bound))


async def topics(session: AsyncSession, applicant_id: int, limit: int = 8) -> list[Topic]:
    """The applicant's active cases and the key projects made from them, newest first."""
    query = (
        select(Case, KeyProject)
        .outerjoin(KeyProject, KeyProject.case_id == Case.id)
        .where(_visible_cases(applicant_id), Case.status.in_(ACTIVE_CASE_STATUSES))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit)
    )
    found: list[Topic] = []
    for case, project in (await session.execute(query)).tuples():
        if project is not None:
            found.append(Topic("kp", str(project.id), project.name, project.company))
        else:
            found.append(Topic("case", case.number, case.project_name, case.company))
    return found


async def case_of_applicant(session: AsyncSession, applicant_id: int, number: str) -> Case | None:
    query = select(Case).where(Case.number == number, _visible_cases(applicant_id))
    return await session.scalar(query)


async def project_of_applicant(
    session: AsyncSession, applicant_id: int, project_id: int
) -> KeyProject | None:
    query = (
        select(KeyProject)
        .join(Case, Case.id == KeyProject.case_id)
        .where(KeyProject.id == project_id, _visible_cases(applicant_id))
    )
    return await session.scalar(query)


async def last_contact(session: AsyncSession, applicant_id: int) -> Case | None:
    """The applicant's latest application: where the booking's contact is prefilled from."""
    query = (
        select(Case)
        .where(Case.applicant_id == applicant_id)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def applicant(session: AsyncSession, applicant_id: int | None) -> Applicant | None:
    return await session.get(Applicant, applicant_id) if applicant_id is not None else None


# -- who attends ---------------------------------------------------------------------------


async def units_of_case(session: AsyncSession, case_id: int) -> list[int]:
    query = select(CaseItem.department_id).where(
        CaseItem.case_id == case_id, CaseItem.department_id.is_not(None)
    )
    return [d for d in (await session.scalars(query)).all() if d is not None]


async def units_of_project(session: AsyncSession, project_id: int) -> list[int]:
    query = (
        select(Staff.department_id)
        .join(KeyProjectMember, KeyProjectMember.staff_id == Staff.id)
        .where(KeyProjectMember.key_project_id == project_id)
    )
    return list((await session.scalars(query)).all())


async def department_by_code(session: AsyncSession, code: str) -> Department | None:
    return await session.scalar(select(Department).where(Department.code == code))


async def unit_staff(session: AsyncSession, department_ids: Iterable[int]) -> list[Staff]:
    """The people of these units who attend meetings (chiefs, specialists, window staff)."""
    ids = list(department_ids)
    if not ids:
        return []
    query = (
        select(Staff)
        .where(
            Staff.department_id.in_(ids),
            Staff.active.is_(True),
            Staff.role.in_([str(r) for r in ATTENDING_ROLES]),
        )
        .order_by(Staff.department_id, Staff.id)
    )
    return list((await session.scalars(query)).unique().all())


async def staff_by_ids(session: AsyncSession, ids: Iterable[int]) -> list[Staff]:
    wanted = list(ids)
    if not wanted:
        return []
    query = select(Staff).where(Staff.id.in_(wanted)).order_by(Staff.id)
    return list((await session.scalars(query)).unique().all())
