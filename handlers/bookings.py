"""预约洽谈 in the chat: enterprises book, move and cancel; staff see the day's and week's
appointments, confirm for their unit, mark 已到/未到 with a record, and book for callers."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import IntegrityError

from chat.callbacks import Prompt
from chat.events import Button, Document, Reply
from dialogs.booking import DAY, NEW_TOPIC, SLOT, TOPIC
from dialogs.engine import Draft
from dialogs.fields import Value, format_phone
from dialogs.texts import label, render
from domain import bookings as life
from domain import notices, policy
from domain.appointments import agenda as appointments_of
from domain.bookings import NotBookable, Slot, SlotTaken
from domain.buttons import BookingConfirm, BookingRef
from domain.policy import Actor
from handlers.context import Context
from handlers.menu import menu_button, menu_buttons, with_menu
from handlers.routes import FormRoute, Routes, staff_of
from handlers.visits import VisitMark
from services.calendar_file import event_file
from services.workdays import CHINA
from storage import bookings
from storage.bookings import NewBooking
from storage.models import Booking, BookingStatus, VisitStatus

log = logging.getLogger(__name__)
routes = Routes("bookings")
WEEKDAYS = "一二三四五六日"
MAX_RECORD = 500
MAX_CANCEL_REASON = 200  # told to the enterprise in one short notice


class BookingOffer(BookingRef, prefix="b:offer"):  # number: the draft token; index in offers
    index: int


class BookingCancel(BookingRef, prefix="b:cancel"): ...


class BookingMove(BookingRef, prefix="b:move"): ...  # choose a new day


class BookingMoveDay(BookingRef, prefix="b:mday"):
    day: str  # YYYYMMDD


class BookingMoveTo(BookingRef, prefix="b:mto"):
    at: str  # YYYYMMDDHHMM, China time
    room: int


class BookingMark(BookingRef, prefix="b:mark"):
    outcome: str  # attended | absent


class BookingRecord(Prompt, prefix="p:brec"):
    number: str
    outcome: str


class BookingStaffCancel(BookingRef, prefix="b:scancel"): ...  # an attending unit cancels


class BookingCancelReason(Prompt, prefix="p:bcan"):
    number: str


class BookingKeep(BookingRef, prefix="b:keep"): ...  # the staff member does not cancel after all


def _now(ctx: Context) -> dt.datetime:
    return ctx.services.clock()


def _day_label(day: dt.date) -> str:
    return f"{day.month}月{day.day}日 周{WEEKDAYS[day.weekday()]}"


def _slot_label(slot: Slot) -> str:
    end = slot.ends_at.astimezone(CHINA)
    return f"{slot.local:%H:%M}–{end:%H:%M} {slot.room_name}"


def _phone(booking: Booking) -> str:
    return format_phone(booking.contact_phone)


def calendar_reply(booking: Booking, now: dt.datetime) -> Reply:
    """The booking as an .ics file (the web chat and Telegram send it; WeChat links it)."""
    content = event_file(
        uid=f"{booking.number}@bangdaiban",
        title=render("bookings/ics_title.j2", booking=booking).strip(),
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        location=render("bookings/ics_location.j2", booking=booking).strip(),
        description=booking.subject,
        stamp=now,
    )
    return Reply.doc(Document(f"{booking.number}.ics", content, "text/calendar"))


# -- the enterprise's dialog ----------------------------------------------------------------


@routes.command("book", applicant=True, bare=True)
@routes.menu_action("book", applicant=True)
async def start(ctx: Context) -> list[Reply]:
    """预约洽谈: the dialog, with topics and contact prefilled from what the applicant has."""
    saved = ctx.state.get("draft")
    if saved and saved.get("form") != "booking":
        return [with_menu("bookings/draft_open.j2")]
    applicant, limits, now = ctx.sender(), ctx.services.bookings, _now(ctx)
    prefill: dict[str, Value] = {}
    topics: list[list[str]] = []
    if applicant is not None:
        async with ctx.services.db.sessions() as session:
            if (
                await bookings.count_upcoming(session, applicant.id, now)
                >= limits.open_per_applicant
            ):
                return [with_menu("bookings/too_many.j2", limit=limits.open_per_applicant)]
            last = await bookings.last_contact(session, applicant.id)
            found = await bookings.topics(session, applicant.id)
        if last is not None:
            prefill = {
                "company": last.company,
                "contact_name": last.contact_name,
                "contact_phone": last.contact_phone,
            }
        kinds = {"case": label("bookings", "case"), "kp": label("bookings", "key_project")}
        topics = [[f"{t.kind}:{t.ref}", f"{kinds[t.kind]} · {t.title}"] for t in found]
    topics.append([NEW_TOPIC, label("bookings", "new_topic")])
    draft, _ = ctx.services.engine.start("booking", prefill)
    draft.choices[TOPIC] = topics
    await prepare(ctx, draft)
    ctx.state["draft"] = draft.dump()
    return [ctx.services.engine.show(draft)]


async def prepare(ctx: Context, draft: Draft) -> bool:
    """Look up the free days and slots when they are asked; a slot of another day than the
    one chosen (the day was edited) is asked again."""
    answers, before = draft.answers, dict(draft.choices)
    slot, day = answers.get("slot"), answers.get("day")
    if isinstance(slot, str) and isinstance(day, str) and not slot.startswith(day):
        del answers["slot"]
        draft.current = "slot"
    if draft.current not in ("day", "slot"):
        return False
    limits, now = ctx.services.bookings, _now(ctx)
    async with ctx.services.db.sessions() as session:
        if draft.current == "day":
            free = await life.free_slots(session, life.bookable_days(now, limits), now, limits)
            days = sorted({s.local.date() for s in free})
            draft.choices[DAY] = [[d.isoformat(), _day_label(d)] for d in days]
        elif isinstance(day, str):
            chosen = dt.date.fromisoformat(day)
            free = await life.free_slots(session, [chosen], now, limits)
            draft.choices[SLOT] = [[s.value, _slot_label(s)] for s in life.one_per_time(free)]
    return draft.choices != before


async def submit(ctx: Context, token: str, answers: dict[str, Value]) -> list[Reply]:
    """Book once per draft token; a slot taken meanwhile keeps the draft and offers others."""
    services, now, limits = ctx.services, _now(ctx), ctx.services.bookings
    staff = ctx.staff if "topic" not in answers else None  # the window's form has no topic
    if "topic" not in answers and (ctx.actor is None or not policy.books_for_callers(ctx.actor)):
        return [Reply(render("bookings/not_allowed.j2"))]
    seen: dict[str, int | None] = {}  # the row expires with a failed transaction
    try:
        async with ctx.transaction(immediate=True) as session:
            applicant = None if staff else await ctx.enrol(session, lock=True)
            applicant_id = seen["applicant"] = applicant.id if applicant else None
            existing = await bookings.by_submission_key(session, applicant_id, token)
            if existing is not None:
                return [with_menu("bookings/already.j2", booking=existing)]
            if applicant_id is not None and (
                await bookings.count_upcoming(session, applicant_id, now)
                >= limits.open_per_applicant
            ):
                return [with_menu("bookings/too_many.j2", limit=limits.open_per_applicant)]
            slot = await life.check_slot(session, str(answers.get("slot") or ""), now, limits)
            case_id = project_id = None
            subject = str(answers.get("subject") or "")
            topic = str(answers.get("topic") or NEW_TOPIC)
            if applicant_id is not None and topic != NEW_TOPIC:
                kind, _, ref = topic.partition(":")
                if kind == "case":
                    case = await bookings.case_of_applicant(session, applicant_id, ref)
                    case_id, subject = (case.id, case.project_name) if case else (None, "")
                elif kind == "kp" and ref.isdecimal():
                    project = await bookings.project_of_applicant(session, applicant_id, int(ref))
                    project_id, subject = (project.id, project.name) if project else (None, "")
                if not subject:
                    raise NotBookable("bookings/not_found.j2")
            booked = await life.book(
                session,
                NewBooking(
                    applicant_id=applicant_id,
                    submission_key=token,
                    room_id=slot.room_id,
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    subject=subject,
                    company=str(answers.get("company") or "") or None,
                    contact_name=str(answers.get("contact_name") or ""),
                    contact_phone=str(answers.get("contact_phone") or ""),
                    created_at=now,
                    case_id=case_id,
                    key_project_id=project_id,
                    booked_by=staff.id if staff else None,
                ),
            )
            notices.enqueue(session, booked.notices)
            booking = booked.booking
    except NotBookable as refused:
        return _ask_again(ctx, token, answers, refused.template)
    except IntegrityError:
        async with services.db.sessions() as session:
            existing = await bookings.by_submission_key(session, seen.get("applicant"), token)
            if existing is not None:
                return [with_menu("bookings/already.j2", booking=existing)]
            wanted = life.parse_slot(str(answers.get("slot") or ""))
            offers = await life.offers_near(session, wanted[0] if wanted else now, now, limits)
        return _offer(ctx, token, answers, SlotTaken(offers))
    if staff is not None:
        text = render("bookings/window_booked.j2", booking=booking, phone=_phone(booking))
        return [Reply(text), calendar_reply(booking, now)]
    text = render(
        "bookings/booked.j2",
        booking=booking,
        phone=_phone(booking),
        change_hours=limits.change_hours,
    )
    return [Reply(text, menu_buttons()), calendar_reply(booking, now)]


def _keep(ctx: Context, token: str, answers: dict[str, Value]) -> Draft | None:
    saved = ctx.state.get("draft")
    if not saved or saved.get("token") != token:
        return None
    ctx.extra["keep_draft"] = True  # nothing typed is lost
    draft = Draft.load(saved)
    draft.answers.update({k: v for k, v in answers.items() if v is not None})
    return draft


def _ask_again(ctx: Context, token: str, answers: dict[str, Value], template: str) -> list[Reply]:
    """The slot cannot be booked: back to the day, the rest kept."""
    draft = _keep(ctx, token, answers)
    if draft is None:
        return [with_menu(template)]
    draft.answers.pop("slot", None)
    draft.answers.pop("day", None)
    draft.current, draft.editing = "day", True
    ctx.state["draft"] = draft.dump()
    return [Reply(render(template))]


def _offer(ctx: Context, token: str, answers: dict[str, Value], taken: SlotTaken) -> list[Reply]:
    """The nearest free slots, each one press from booked; the draft keeps the rest."""
    draft = _keep(ctx, token, answers)
    text = render("bookings/taken.j2", offers=taken.offers)
    if draft is None:
        return [with_menu("bookings/taken.j2", offers=[])]
    draft.choices["offers"] = [[s.value, _slot_label(s)] for s in taken.offers]
    ctx.state["draft"] = draft.dump()
    rows = [
        [BookingOffer(token, i).button(f"{s.local.month}月{s.local.day}日 {_slot_label(s)}")]
        for i, s in enumerate(taken.offers)
    ]
    return [Reply(text, rows)]


@routes.button(BookingOffer, actor=True, applicant=True)
async def take_offer(ctx: Context, data: BookingOffer) -> list[Reply]:
    """One press books an offered slot with the answers kept from the dialog."""
    saved = ctx.state.get("draft")
    if not saved or saved.get("token") != data.number:
        return [with_menu("dialog/expired.j2")]
    draft = Draft.load(saved)
    offers = draft.choices.get("offers") or []
    if data.index >= len(offers):
        return [with_menu("dialog/expired.j2")]
    value = offers[data.index][0]
    draft.answers["slot"], draft.answers["day"] = value, value[:10]
    ctx.state["draft"] = draft.dump()
    replies = await submit(ctx, draft.token, dict(draft.answers))
    if not ctx.extra.get("keep_draft"):
        ctx.state.pop("draft", None)
    return replies


async def resubmitted(ctx: Context, token: str) -> list[Reply] | None:
    person = ctx.sender()
    async with ctx.services.db.sessions() as session:
        found = await bookings.by_submission_key(session, person.id if person else None, token)
    return [with_menu("bookings/already.j2", booking=found)] if found else None


routes.form("booking", FormRoute(submit, applicant=True, resubmit=resubmitted, prepare=prepare))
routes.form("window_booking", FormRoute(submit, actor=True, prepare=prepare))


# -- the enterprise's bookings: list, move, cancel ----------------------------------------


@routes.command("bookings", applicant=True, bare=True)
@routes.menu_action("bookings", applicant=True)
async def my_bookings(ctx: Context) -> list[Reply]:
    applicant, now = ctx.sender(), _now(ctx)
    found: list[Booking] = []
    if applicant is not None:
        async with ctx.services.db.sessions() as session:
            found = await bookings.upcoming_for(session, applicant.id, now)
    rows = [
        [
            BookingMove(b.number).button(f"{label('bookings', 'move')} {b.number}"),
            BookingCancel(b.number).button(f"{label('bookings', 'cancel')} {b.number}"),
        ]
        for b in found
    ]
    rows.append([menu_button("book"), menu_button("menu")])
    text = render(
        "bookings/list.j2", bookings=found, change_hours=ctx.services.bookings.change_hours
    )
    return [Reply(text, rows)]


async def _own(ctx: Context, number: str) -> Booking | None:
    applicant = ctx.sender()
    if applicant is None:
        return None
    async with ctx.services.db.sessions() as session:
        booking = await bookings.by_number(session, number)
    return booking if booking is not None and booking.applicant_id == applicant.id else None


@routes.button(BookingCancel, applicant=True)
async def cancel(ctx: Context, data: BookingCancel) -> list[Reply]:
    applicant, now, limits = ctx.sender(), _now(ctx), ctx.services.bookings
    if applicant is None:
        return [with_menu("bookings/not_found.j2")]
    async with ctx.transaction(immediate=True) as session:
        booking = await bookings.by_number(session, data.number, lock=True)
        if booking is None or booking.applicant_id != applicant.id:
            return [with_menu("bookings/not_found.j2")]
        if not life.changeable(booking, now, limits):
            return [with_menu("bookings/too_late.j2", change_hours=limits.change_hours)]
        notices.enqueue(session, await life.cancel(session, booking, now))
    return [with_menu("bookings/cancelled.j2", booking=booking)]


@routes.button(BookingMove, applicant=True)
async def move_choose_day(ctx: Context, data: BookingMove) -> list[Reply]:
    booking, now, limits = await _own(ctx, data.number), _now(ctx), ctx.services.bookings
    if booking is None:
        return [with_menu("bookings/not_found.j2")]
    if not life.changeable(booking, now, limits):
        return [with_menu("bookings/too_late.j2", change_hours=limits.change_hours)]
    async with ctx.services.db.sessions() as session:
        free = await life.free_slots(session, life.bookable_days(now, limits), now, limits)
    days = sorted({s.local.date() for s in free})
    rows = [[BookingMoveDay(booking.number, f"{d:%Y%m%d}").button(_day_label(d))] for d in days]
    rows.append([menu_button("menu")])
    return [Reply(render("bookings/move_day.j2", booking=booking, days=days), rows)]


@routes.button(BookingMoveDay, applicant=True)
async def move_choose_slot(ctx: Context, data: BookingMoveDay) -> list[Reply]:
    booking, now, limits = await _own(ctx, data.number), _now(ctx), ctx.services.bookings
    if booking is None:
        return [with_menu("bookings/not_found.j2")]
    try:
        day = dt.datetime.strptime(data.day, "%Y%m%d").date()
    except ValueError:
        return [with_menu("dialog/expired.j2")]
    async with ctx.services.db.sessions() as session:
        free = life.one_per_time(await life.free_slots(session, [day], now, limits))
    rows = [
        [BookingMoveTo(booking.number, f"{s.local:%Y%m%d%H%M}", s.room_id).button(_slot_label(s))]
        for s in free
    ]
    rows.append([BookingMove(booking.number).button(label("bookings", "back"))])
    text = render("bookings/move_slot.j2", booking=booking, day=_day_label(day), slots=free)
    return [Reply(text, rows)]


@routes.button(BookingMoveTo, applicant=True)
async def move_to(ctx: Context, data: BookingMoveTo) -> list[Reply]:
    """Move, checked on the server; a slot taken meanwhile offers the nearest free ones."""
    applicant, now, limits = ctx.sender(), _now(ctx), ctx.services.bookings
    if applicant is None:
        return [with_menu("bookings/not_found.j2")]
    try:
        local = dt.datetime.strptime(data.at, "%Y%m%d%H%M")
    except ValueError:
        return [with_menu("dialog/expired.j2")]
    value = f"{local:%Y-%m-%dT%H:%M}@{data.room}"
    try:
        async with ctx.transaction(immediate=True) as session:
            booking = await bookings.by_number(session, data.number, lock=True)
            if booking is None or booking.applicant_id != applicant.id:
                return [with_menu("bookings/not_found.j2")]
            if not life.changeable(booking, now, limits):
                return [with_menu("bookings/too_late.j2", change_hours=limits.change_hours)]
            slot = await life.check_slot(session, value, now, limits)
            notices.enqueue(session, await life.move(session, booking, slot, now))
    except NotBookable as refused:
        return [with_menu(refused.template)]
    except IntegrityError:
        async with ctx.services.db.sessions() as session:
            parsed = life.parse_slot(value)
            offers = await life.offers_near(session, parsed[0] if parsed else now, now, limits)
        rows = [
            [
                BookingMoveTo(data.number, f"{s.local:%Y%m%d%H%M}", s.room_id).button(
                    f"{s.local.month}月{s.local.day}日 {_slot_label(s)}"
                )
            ]
            for s in offers
        ]
        return [Reply(render("bookings/taken.j2", offers=offers), rows)]
    return [
        Reply(render("bookings/moved.j2", booking=booking), menu_buttons()),
        calendar_reply(booking, now),
    ]


# -- staff ----------------------------------------------------------------------------------


@routes.command("appointments", staff=True)
async def appointments(ctx: Context, argument: str) -> list[Reply]:
    """Today's (or, with `week`, this week's) bookings the staff member's unit attends; the
    window sees all."""
    staff = staff_of(ctx)
    actor = ctx.actor or Actor.of_staff(staff)
    week = argument.strip().lower() in ("week", "本周")
    async with ctx.services.db.sessions() as session:
        found = await appointments_of(session, actor, staff.department_id, _now(ctx), week)
    rows: list[list[Button]] = []
    for booking in found.bookings:
        if booking.status == BookingStatus.BOOKED:
            rows.append(
                [
                    BookingMark(booking.number, "attended").button(
                        f"{label('bookings', 'attended')} {booking.number}"
                    ),
                    BookingMark(booking.number, "absent").button(
                        f"{label('bookings', 'absent')} {booking.number}"
                    ),
                    BookingStaffCancel(booking.number).button(
                        f"{label('bookings', 'staff_cancel')} {booking.number}"
                    ),
                ]
            )
    for visit in found.visits:
        if visit.status == VisitStatus.CONFIRMED:
            rows.append(
                [
                    VisitMark(visit.number, "attended").button(
                        f"{label('visits', 'attended')} {visit.number}"
                    ),
                    VisitMark(visit.number, "absent").button(
                        f"{label('visits', 'absent')} {visit.number}"
                    ),
                ]
            )
    text = render(
        "bookings/appointments.j2",
        visits=found.visits,
        meetings=found.meetings,
        bookings=found.bookings,
        week=week,
        start=found.start,
        last=found.last,
    )
    return [Reply(text, rows)]


@routes.button(BookingConfirm, staff=True)
async def confirm(ctx: Context, data: BookingConfirm) -> list[Reply]:
    staff, actor, now = staff_of(ctx), ctx.actor, _now(ctx)
    async with ctx.transaction(immediate=True) as session:
        booking = await bookings.by_number(session, data.number, lock=True)
        if booking is None or actor is None or not life.may_see(actor, booking):
            return [Reply(render("bookings/not_allowed.j2"))]
        done = await life.confirm(session, booking, staff, now)
    template = "bookings/confirmed.j2" if done else "bookings/already_confirmed.j2"
    return [Reply(render(template, booking=booking))]


@routes.button(BookingMark, staff=True)
async def ask_record(ctx: Context, data: BookingMark) -> list[Reply]:
    actor = ctx.actor
    if data.outcome not in ("attended", "absent"):
        return [Reply(render("dialog/expired.j2"))]
    async with ctx.services.db.sessions() as session:
        booking = await bookings.by_number(session, data.number)
    if booking is None or actor is None or not life.may_see(actor, booking):
        return [Reply(render("bookings/not_allowed.j2"))]
    ctx.state["mode"] = BookingRecord(booking.number, data.outcome).pack()
    return [Reply(render("bookings/record_prompt.j2", booking=booking))]


@routes.prompt(BookingRecord, staff=True)
async def record(ctx: Context, data: BookingRecord, text: str) -> list[Reply]:
    """已到/未到 and the record, on the booking and the case's or key project's timeline."""
    staff, actor, now = staff_of(ctx), ctx.actor, _now(ctx)
    if len(text) > MAX_RECORD:
        ctx.state["mode"] = data.pack()
        return [Reply(render("bookings/record_too_long.j2", length=len(text), limit=MAX_RECORD))]
    note = "" if text.strip() in ("无", "没有") else text.strip()
    async with ctx.transaction(immediate=True) as session:
        booking = await bookings.by_number(session, data.number, lock=True)
        if booking is None or actor is None or not life.may_see(actor, booking):
            return [Reply(render("bookings/not_allowed.j2"))]
        await life.mark(session, booking, staff, data.outcome == "attended", note, now)
    return [Reply(render("bookings/marked.j2", booking=booking))]


@routes.button(BookingStaffCancel, staff=True)
async def ask_cancel_reason(ctx: Context, data: BookingStaffCancel) -> list[Reply]:
    """A unit asked to attend cannot after all: the reason is asked first, as the enterprise
    is told it."""
    actor = ctx.actor
    async with ctx.services.db.sessions() as session:
        booking = await bookings.by_number(session, data.number)
    if booking is None or actor is None or not life.may_see(actor, booking):
        return [Reply(render("bookings/not_allowed.j2"))]
    if booking.status != BookingStatus.BOOKED:
        return [Reply(render("bookings/not_open.j2", booking=booking))]
    ctx.state["mode"] = BookingCancelReason(booking.number).pack()
    text = render("bookings/cancel_reason_prompt.j2", booking=booking)
    return [Reply(text, _keep_button(booking.number))]


def _keep_button(number: str) -> list[list[Button]]:
    return [[BookingKeep(number).button(label("bookings", "keep"))]]


@routes.button(BookingKeep, staff=True)
async def keep(ctx: Context, data: BookingKeep) -> list[Reply]:
    if ctx.state.get("mode") == BookingCancelReason(data.number).pack():
        ctx.state.pop("mode")
    return [Reply(render("bookings/kept.j2"))]


@routes.prompt(BookingCancelReason, staff=True)
async def cancel_for_unit(ctx: Context, data: BookingCancelReason, text: str) -> list[Reply]:
    """Cancelled by staff: the enterprise is told why and whom to call, the units that had
    confirmed are told, and the case's timeline keeps it."""
    staff, actor, now = staff_of(ctx), ctx.actor, _now(ctx)
    reason = text.strip()
    if not reason or len(reason) > MAX_CANCEL_REASON:
        ctx.state["mode"] = data.pack()
        text = render(
            "bookings/cancel_reason_again.j2", length=len(reason), limit=MAX_CANCEL_REASON
        )
        return [Reply(text, _keep_button(data.number))]
    async with ctx.transaction(immediate=True) as session:
        booking = await bookings.by_number(session, data.number, lock=True)
        if booking is None or actor is None or not life.may_see(actor, booking):
            return [Reply(render("bookings/not_allowed.j2"))]
        if booking.status != BookingStatus.BOOKED:  # the enterprise cancelled meanwhile
            return [Reply(render("bookings/not_open.j2", booking=booking))]
        notices.enqueue(session, await life.cancel_by_staff(session, booking, staff, reason, now))
    return [Reply(render("bookings/staff_cancelled.j2", booking=booking))]


@routes.command("book_for", staff=True)
async def book_for(ctx: Context, _: str) -> list[Reply]:
    """The window books for a caller on the phone."""
    actor = ctx.actor
    if actor is None or not policy.books_for_callers(actor):
        return [Reply(render("bookings/not_allowed.j2"))]
    if ctx.state.get("draft"):
        return [Reply(render("bookings/draft_open.j2"))]
    draft, _step = ctx.services.engine.start("window_booking")
    ctx.state["draft"] = draft.dump()
    return [ctx.services.engine.show(draft)]
