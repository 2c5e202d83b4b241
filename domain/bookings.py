"""预约洽谈 (work plan 四(二)): slots of the 对接洽谈室 on working days, booking, moving and
cancelling, the units asked to attend, reminders, 已到/未到 with a record.

One slot is one room at one start time; the database's unique index over holding bookings
(storage/models.py, uq_bookings_slot) is what makes "never double-booked" true under any
concurrency: an insert or a move into a held slot fails, and the caller offers the nearest
free slots instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.fields import format_phone
from dialogs.texts import label, render
from domain import policy
from domain.buttons import BookingConfirm
from domain.notices import Notice, enqueue
from domain.policy import Actor
from domain.reminders import Services
from services.workdays import CHINA, official
from storage import bookings, key_projects
from storage.bookings import NewBooking
from storage.models import (
    ActorKind,
    Booking,
    BookingStatus,
    Case,
    CaseEvent,
    Milestone,
    Room,
    Staff,
)

log = logging.getLogger(__name__)
DAY_BEFORE_AT = dt.time(16, 0)  # the reminder on the working day before
HOUR_BEFORE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class BookingLimits:
    """Settings of the booking service (bot/config.py)."""

    change_hours: int = 2  # cancel or move up to this many hours before the start
    days_ahead: int = 14  # bookable calendar days from today
    lead_minutes: int = 60  # a slot must start at least this long after now
    open_per_applicant: int = 3  # upcoming bookings one applicant may hold
    offers: int = 5  # nearest free slots offered when the chosen one was just taken


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: dt.datetime  # UTC
    room_id: int
    ends_at: dt.datetime = field(compare=False)
    room_name: str = field(compare=False)

    @property
    def local(self) -> dt.datetime:
        return self.starts_at.astimezone(CHINA)

    @property
    def value(self) -> str:
        """How a dialog keeps it: the local date and time and the room."""
        return f"{self.local:%Y-%m-%dT%H:%M}@{self.room_id}"


class NotBookable(Exception):
    """The slot is not one the rooms offer (gone, past, off hours); the template says why."""

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template


class SlotTaken(Exception):
    """Someone else holds the slot; `offers` are the nearest free ones."""

    def __init__(self, offers: list[Slot]) -> None:
        super().__init__("slot taken")
        self.offers = offers


@dataclass
class Booked:
    booking: Booking
    notices: list[Notice]


# -- slots ---------------------------------------------------------------------------------


def day_slots(room: Room, day: dt.date) -> list[Slot]:
    """The room's slots on a day (whether it is a working day is the caller's question)."""
    found = []
    step = dt.timedelta(minutes=room.slot_minutes)
    for start_text, end_text in room.hours:
        start = dt.datetime.combine(day, dt.time.fromisoformat(start_text), CHINA)
        end = dt.datetime.combine(day, dt.time.fromisoformat(end_text), CHINA)
        while start + step <= end:
            found.append(
                Slot(
                    start.astimezone(dt.UTC), room.id, (start + step).astimezone(dt.UTC), room.name
                )
            )
            start += step
    return found


def bookable_days(now: dt.datetime, limits: BookingLimits) -> list[dt.date]:
    """Working days from today through `days_ahead` calendar days."""
    today = now.astimezone(CHINA).date()
    calendar = official()
    days = (today + dt.timedelta(days=n) for n in range(limits.days_ahead + 1))
    return [day for day in days if calendar.is_workday(day)]


async def free_slots(
    session: AsyncSession, days: Sequence[dt.date], now: dt.datetime, limits: BookingLimits
) -> list[Slot]:
    """Every free slot of every active room on these days, soonest first."""
    if not days:
        return []
    rooms = await bookings.rooms(session)
    first = dt.datetime.combine(min(days), dt.time(0), CHINA)
    last = dt.datetime.combine(max(days) + dt.timedelta(days=1), dt.time(0), CHINA)
    held = await bookings.taken(session, first, last)
    earliest = now + dt.timedelta(minutes=limits.lead_minutes)
    return sorted(
        slot
        for room in rooms
        for day in days
        for slot in day_slots(room, day)
        if slot.starts_at >= earliest and (slot.room_id, slot.starts_at) not in held
    )


def one_per_time(slots: Sequence[Slot]) -> list[Slot]:
    """The first free room at each start time: what an enterprise chooses from."""
    seen: set[dt.datetime] = set()
    chosen = []
    for slot in slots:
        if slot.starts_at not in seen:
            seen.add(slot.starts_at)
            chosen.append(slot)
    return chosen


def nearest(wanted: dt.datetime, slots: Sequence[Slot], count: int) -> list[Slot]:
    """The `count` free start times closest to the wanted one (a later one first on a tie)."""
    chosen = one_per_time(slots)
    chosen.sort(key=lambda s: (abs((s.starts_at - wanted).total_seconds()), s.starts_at < wanted))
    return sorted(chosen[:count])


async def offers_near(
    session: AsyncSession, wanted: dt.datetime, now: dt.datetime, limits: BookingLimits
) -> list[Slot]:
    free = await free_slots(session, bookable_days(now, limits), now, limits)
    return nearest(wanted, free, limits.offers)


def parse_slot(value: str) -> tuple[dt.datetime, int] | None:
    """A slot value (Slot.value) back to its UTC start and room; None if malformed."""
    when, _, room = value.partition("@")
    try:
        local = dt.datetime.fromisoformat(when).replace(tzinfo=CHINA)
    except ValueError:
        return None
    if not room.isdecimal() or len(room) > 9:
        return None
    return local.astimezone(dt.UTC), int(room)


async def check_slot(
    session: AsyncSession, value: str, now: dt.datetime, limits: BookingLimits
) -> Slot:
    """The slot a dialog chose, checked on the server: a room's slot on a bookable day."""
    parsed = parse_slot(value)
    if parsed is None:
        raise NotBookable("bookings/slot_gone.j2")
    starts_at, room_id = parsed
    room = await bookings.room(session, room_id)
    day = starts_at.astimezone(CHINA).date()
    if room is None or not room.active or day not in bookable_days(now, limits):
        raise NotBookable("bookings/slot_gone.j2")
    slot = next((s for s in day_slots(room, day) if s.starts_at == starts_at), None)
    if slot is None or slot.starts_at < now + dt.timedelta(minutes=limits.lead_minutes):
        raise NotBookable("bookings/slot_gone.j2")
    return slot


# -- booking -------------------------------------------------------------------------------


async def attending_units(
    session: AsyncSession, case_id: int | None, project_id: int | None
) -> list[int]:
    """政务服务中心 always; the units of the case's items or the key project's team."""
    lead = await bookings.department_by_code(session, key_projects.GOVERNMENT_SERVICES)
    units = [lead.id] if lead is not None else []
    if case_id is not None:
        units += await bookings.units_of_case(session, case_id)
    if project_id is not None:
        units += await bookings.units_of_project(session, project_id)
    return list(dict.fromkeys(units))


async def book(
    session: AsyncSession,
    new: NewBooking,
    units: Sequence[int] | None = None,
) -> Booked:
    """Insert the booking (IntegrityError if the slot is held) and tell the units."""
    booking = await bookings.create(session, new)
    chosen = (
        list(units) if units else await attending_units(session, new.case_id, new.key_project_id)
    )
    await bookings.add_units(session, booking, chosen)
    log.info("booking made number=%s room=%s", booking.number, booking.room_id)
    return Booked(booking, await unit_notices(session, booking, "booked"))


async def unit_notices(
    session: AsyncSession, booking: Booking, event: str, confirmed: Sequence[int] = ()
) -> list[Notice]:
    """One notice to each attending person: booked (with 确认参加), moved or cancelled; the
    people who had confirmed are told too, whatever their role."""
    staff = await bookings.unit_staff(session, [u.department_id for u in booking.units])
    staff += await bookings.staff_by_ids(session, confirmed)
    notices = []
    for person in {p.id: p for p in staff}.values():
        buttons = []
        unit = next((u for u in booking.units if u.department_id == person.department_id), None)
        if unit is None:
            continue
        if event != "cancelled" and unit.confirmed_at is None:
            buttons = [[BookingConfirm(booking.number).button(label("bookings", "confirm"))]]
        text = render(
            "bookings/staff_notice.j2",
            booking=booking,
            event=event,
            phone=_phone(booking),
            had_confirmed=person.id in confirmed,
        )
        key = f"booking:{booking.id}:{event}:{booking.starts_at:%Y%m%d%H%M}"
        notices.append(Notice(person, text, key, buttons))
    return notices


def _phone(booking: Booking) -> str:
    try:
        return format_phone(booking.contact_phone)
    except Exception:  # a number kept as typed at the window
        return booking.contact_phone


def changeable(booking: Booking, now: dt.datetime, limits: BookingLimits) -> bool:
    """Cancel or move only while BOOKING_CHANGE_HOURS remain before the start."""
    return booking.status == BookingStatus.BOOKED and now <= booking.starts_at - dt.timedelta(
        hours=limits.change_hours
    )


def _confirmers(booking: Booking) -> list[int]:
    return [u.confirmed_by for u in booking.units if u.confirmed_by is not None]


async def cancel(session: AsyncSession, booking: Booking, now: dt.datetime) -> list[Notice]:
    booking.status = BookingStatus.CANCELLED
    bookings.touch(booking, now)
    await session.flush()
    log.info("booking cancelled number=%s", booking.number)
    return await unit_notices(session, booking, "cancelled", _confirmers(booking))


async def cancel_by_staff(
    session: AsyncSession, booking: Booking, staff: Staff, reason: str, now: dt.datetime
) -> list[Notice]:
    """An attending unit cancels: the enterprise is told why (and whom to call), the units
    that had confirmed are told, and the case's timeline keeps a line (staff only)."""
    booking.record, booking.marked_by = reason, staff.id
    if booking.case_id is not None:
        note = render("bookings/timeline_cancelled.j2", booking=booking, reason=reason)
        await note_on_case(session, booking.case_id, staff, note)
    told = applicant_notice(booking, "bookings/cancelled_by_unit.j2", "cancelled_by_unit")
    return told + await cancel(session, booking, now)


async def move(
    session: AsyncSession, booking: Booking, slot: Slot, now: dt.datetime
) -> list[Notice]:
    """Move to another slot (IntegrityError if it is held); reminders start over."""
    booking.room_id, booking.starts_at, booking.ends_at = slot.room_id, slot.starts_at, slot.ends_at
    booking.reminded_day_at = booking.reminded_hour_at = None
    confirmed = _confirmers(booking)
    for unit in booking.units:  # a unit free at the old time may not be at the new one
        unit.confirmed_by = unit.confirmed_at = None
    bookings.touch(booking, now)
    await session.flush()
    await session.refresh(booking, ["room"])
    log.info("booking moved number=%s", booking.number)
    return await unit_notices(session, booking, "moved", confirmed)


# -- staff: confirm, 已到/未到 ----------------------------------------------------------------


def may_see(actor: Actor, booking: Booking) -> bool:
    return policy.attends(actor, frozenset(u.department_id for u in booking.units))


class UnitAsked(Protocol):
    """A unit asked to a booking, a visit or a meeting, and who confirmed for it."""

    department_id: int
    confirmed_by: int | None
    confirmed_at: dt.datetime | None


Unit = TypeVar("Unit", bound=UnitAsked)


def confirm_unit(units: Iterable[Unit], staff: Staff, now: dt.datetime) -> Unit | None:
    """The staff member's unit, now confirmed by them; None when their unit is not asked or
    had confirmed already (the first to confirm speaks for the unit)."""
    unit = next((u for u in units if u.department_id == staff.department_id), None)
    if unit is None or unit.confirmed_at is not None:
        return None
    unit.confirmed_by, unit.confirmed_at = staff.id, now
    return unit


async def confirm(session: AsyncSession, booking: Booking, staff: Staff, now: dt.datetime) -> bool:
    """The staff member confirms for their unit; False when it had confirmed already."""
    if confirm_unit(booking.units, staff, now) is None:
        return False
    await session.flush()
    return True


async def note_on_case(session: AsyncSession, case_id: int, staff: Staff, note: str) -> None:
    """A staff-only line on the case's timeline; the case's state stays as it is."""
    case = await session.get(Case, case_id)
    if case is not None:
        session.add(
            CaseEvent(
                case_id=case.id,
                actor_kind=ActorKind.STAFF,
                actor_id=staff.id,
                from_status=case.status,
                to_status=case.status,
                note=note,
                visible_to_applicant=False,
            )
        )


async def mark(
    session: AsyncSession,
    booking: Booking,
    staff: Staff,
    attended: bool,
    record: str,
    now: dt.datetime,
) -> None:
    """已到/未到 with a short record, written to the case's or key project's timeline."""
    booking.status = BookingStatus.ATTENDED if attended else BookingStatus.ABSENT
    booking.record, booking.marked_by = record or None, staff.id
    bookings.touch(booking, now)
    note = render("bookings/timeline_note.j2", booking=booking, attended=attended, record=record)
    if booking.case_id is not None:
        await note_on_case(session, booking.case_id, staff, note)
    if booking.key_project_id is not None:
        session.add(
            Milestone(
                key_project_id=booking.key_project_id,
                title=note[:200],
                due_on=booking.starts_at.astimezone(CHINA).date(),
                done_at=booking.updated_at,
            )
        )
    await session.flush()


# -- reminders ------------------------------------------------------------------------------


def day_before_moment(starts_at: dt.datetime) -> dt.datetime:
    """16:00 on the working day before the booking's day."""
    day = starts_at.astimezone(CHINA).date() - dt.timedelta(days=1)
    calendar = official()
    while not calendar.is_workday(day):
        day -= dt.timedelta(days=1)
    return dt.datetime.combine(day, DAY_BEFORE_AT, CHINA).astimezone(dt.UTC)


def applicant_notice(booking: Booking, template: str, event: str) -> list[Notice]:
    if booking.applicant is None:
        return []
    text = render(template, booking=booking, phone=_phone(booking))
    key = f"booking:{booking.id}:{event}:{booking.starts_at:%Y%m%d%H%M}"
    return [Notice(booking.applicant, text, key)]


async def _reminders(session: AsyncSession, booking: Booking, kind: str) -> list[Notice]:
    """The enterprise and the staff who confirmed, reminded once per start time."""
    notices = applicant_notice(booking, f"bookings/remind_{kind}.j2", f"remind_{kind}")
    confirmed = [u.confirmed_by for u in booking.units if u.confirmed_by is not None]
    for person in await bookings.staff_by_ids(session, confirmed):
        text = render(f"bookings/staff_remind_{kind}.j2", booking=booking, phone=_phone(booking))
        key = f"booking:{booking.id}:remind_{kind}:{booking.starts_at:%Y%m%d%H%M}"
        notices.append(Notice(person, text, key))
    return notices


REMIND_HORIZON = dt.timedelta(days=12)  # longer than any holiday: the day-before is within it


class Remindable(Protocol):
    """A booking, a visit or a meeting: a start and the two reminders' marks."""

    starts_at: dt.datetime
    updated_at: dt.datetime
    reminded_day_at: dt.datetime | None
    reminded_hour_at: dt.datetime | None


def due_reminders(item: Remindable, now: dt.datetime) -> list[str]:
    """Which reminders ("day", "hour") are due now, each marked sent once. A reminder whose
    moment had passed when the item was made (or moved) is marked but not sent late."""
    due = []
    hour_at = item.starts_at - HOUR_BEFORE
    if item.reminded_day_at is None:
        day_at = day_before_moment(item.starts_at)
        if now >= day_at:
            if item.updated_at < day_at and now < hour_at:
                due.append("day")
            item.reminded_day_at = now
    if item.reminded_hour_at is None and now >= hour_at:
        if item.updated_at < hour_at:
            due.append("hour")
        item.reminded_hour_at = now
    return due


Item = TypeVar("Item", bound=Remindable)


async def send_reminders(
    services: Services,
    now: dt.datetime,
    candidates: Callable[[AsyncSession, dt.datetime, dt.datetime], Awaitable[list[Item]]],
    notices: Callable[[AsyncSession, Item, str], Awaitable[list[Notice]]],
) -> int:
    """Each due reminder of each candidate (a booking, a visit or a meeting) through the
    outbox, in the transaction that marks it sent; the number of notices queued."""
    sent = 0
    async with services.db.transaction() as session:
        for item in await candidates(session, now + REMIND_HORIZON, now):
            for kind in due_reminders(item, now):
                found = await notices(session, item, kind)
                enqueue(session, found)
                sent += len(found)
    return sent


async def remind_bookings(services: Services, now: dt.datetime) -> int:
    """The working day before at 16:00 and one hour before: each reminder once."""
    return await send_reminders(services, now, bookings.reminder_candidates, _reminders)
