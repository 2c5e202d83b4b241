"""The case life cycle: one locked, checked operation per verb.

Each operation locks the case row, checks the step against STEPS and the actor against the
policy, writes the CaseEvent, sets the working-day clock from CLOCK and returns the notices,
which the caller puts in the outbox in the same transaction (`notices.enqueue`). Call them
inside `db.transaction(immediate=True)` so SQLite serialises writers as PostgreSQL's row lock
does.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.fields import format_phone
from dialogs.texts import label, render
from domain import bad_ratings, policy
from domain.bad_ratings import BadRatingLimits
from domain.buttons import CaseInstruct, CaseView, Rate, UploadStart
from domain.notices import Notice
from domain.policy import Actor, CaseTarget, Right
from domain.ratings import RatingLinks
from services.workdays import add_workdays, workdays_between
from storage import cases, files, questions, rollup, roster
from storage.models import (
    Case,
    CaseEvent,
    CaseItem,
    CaseRating,
    CaseStatus,
    RatingLevel,
    utcnow,
)

log = logging.getLogger(__name__)
S = CaseStatus


class CaseVerb(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    START = "start"
    SUPPLEMENT = "supp"
    RESUME = "resume"
    SUPPLIED = "supplied"  # the applicant finished uploading the 补正 materials
    COMPLETE = "complete"
    DELIVER = "deliver"
    PICKUP = "pickup"
    CLOSE = "close"
    RATE = "rate"  # the applicant's 回访 rating closes the case
    EXPIRE = "expire"  # an unanswered 回访 closes after the limit
    WITHDRAW = "withdraw"


@dataclass(frozen=True)
class Step:
    sources: frozenset[CaseStatus]
    target: CaseStatus
    right: Right
    note_shown: bool = False  # the typed note appears on the applicant's timeline


def _step(sources: set[CaseStatus], target: CaseStatus, right: Right, shown: bool = False) -> Step:
    return Step(frozenset(sources), target, right, shown)


# The one transitions table of the life cycle (DESIGN.md, "Case life cycle").
STEPS: dict[CaseVerb, Step] = {
    CaseVerb.ACCEPT: _step({S.SUBMITTED}, S.ACCEPTED, Right.MOVE),
    CaseVerb.REJECT: _step({S.SUBMITTED}, S.REJECTED, Right.MOVE, shown=True),
    CaseVerb.START: _step({S.ACCEPTED}, S.IN_PROGRESS, Right.MOVE),
    CaseVerb.SUPPLEMENT: _step({S.IN_PROGRESS}, S.NEEDS_SUPPLEMENT, Right.MOVE, shown=True),
    CaseVerb.RESUME: _step({S.NEEDS_SUPPLEMENT}, S.IN_PROGRESS, Right.MOVE),
    CaseVerb.SUPPLIED: _step({S.NEEDS_SUPPLEMENT}, S.IN_PROGRESS, Right.OWN),
    CaseVerb.COMPLETE: _step({S.ACCEPTED, S.IN_PROGRESS}, S.COMPLETED, Right.MOVE),
    CaseVerb.DELIVER: _step({S.COMPLETED}, S.DELIVERED, Right.MOVE, shown=True),
    CaseVerb.PICKUP: _step({S.COMPLETED}, S.DELIVERED, Right.MOVE),
    CaseVerb.CLOSE: _step({S.DELIVERED}, S.CLOSED, Right.MOVE),
    CaseVerb.RATE: _step({S.DELIVERED}, S.CLOSED, Right.OWN),
    CaseVerb.EXPIRE: _step({S.DELIVERED}, S.CLOSED, Right.SYSTEM),
    CaseVerb.WITHDRAW: _step(
        {S.SUBMITTED, S.ACCEPTED, S.IN_PROGRESS, S.NEEDS_SUPPLEMENT}, S.WITHDRAWN, Right.OWN
    ),
}
STAFF_VERBS = frozenset(verb for verb, step in STEPS.items() if step.right == Right.MOVE)
ITEM_NEXT = {"pending": "declared", "declared": "done"}  # an approval item's own ladder


def allowed(status: str, verb: CaseVerb) -> bool:
    """Whether `verb` applies to a case in `status` (what buttons to offer)."""
    return CaseStatus(status) in STEPS[verb].sources


# -- the working-day clock ----------------------------------------------------------------


@dataclass(frozen=True)
class CaseLimits:
    """Working days allowed per state; the clock stops while the applicant supplements."""

    submitted: int = 1
    accepted: int = 3
    in_progress: int = 20
    remind_before: dt.timedelta = dt.timedelta(days=1)
    follow_up_close_workdays: int = 5


LIMITS = CaseLimits()


class Clock(Enum):
    START = "start"  # a fresh limit for the new state
    PAUSE = "pause"  # keep the time left; staff wait for the applicant
    RESUME = "resume"  # the time left runs again (or a fresh limit if none was kept)
    STOP = "stop"  # nothing is due any more


# The one clock table: what entering each status does to `due_at`.
CLOCK: dict[CaseStatus, Clock] = {
    S.SUBMITTED: Clock.START,
    S.ACCEPTED: Clock.START,
    S.IN_PROGRESS: Clock.RESUME,
    S.NEEDS_SUPPLEMENT: Clock.PAUSE,
    S.COMPLETED: Clock.STOP,
    S.DELIVERED: Clock.STOP,  # the 回访 wait is counted from the delivered event
    S.REJECTED: Clock.STOP,
    S.WITHDRAWN: Clock.STOP,
    S.CLOSED: Clock.STOP,
}


def set_clock(case: Case, now: dt.datetime, limits: CaseLimits = LIMITS) -> None:
    """Set `due_at` for the status the case has just entered, by CLOCK."""
    action = CLOCK[CaseStatus(case.status)]
    case.reminded_at = None
    if case.status == S.DELIVERED:  # the 回访 question goes out now; its wait runs from here
        case.follow_up_asked_at = now
    if action == Clock.PAUSE:
        if case.due_at is not None:
            case.paused_seconds = max(0, int((case.due_at - now).total_seconds()))
        case.due_at = None
        return
    if action == Clock.RESUME and case.paused_seconds is not None:
        case.due_at = now + dt.timedelta(seconds=case.paused_seconds)
        case.paused_seconds = None
        return
    case.paused_seconds = None
    if action == Clock.STOP:
        case.due_at = None
        return
    days = getattr(limits, CaseStatus(case.status).value)
    case.due_at = add_workdays(now, days)


# -- results and refusals -----------------------------------------------------------------


class CaseNotFound(Exception):
    """No such case (or none this actor may know of)."""


@dataclass(frozen=True)
class Snapshot:
    """What a refusal tells about the case (it outlives the rolled-back transaction)."""

    number: str
    status: str


class StaleAction(Exception):
    """The case moved on since the actor's screen was drawn (someone else acted first)."""

    def __init__(self, case: Case) -> None:
        super().__init__(f"case {case.number} is {case.status}")
        self.case = Snapshot(case.number, case.status)


class NotNow(Exception):
    """The step does not apply to this case in its state; `template` says why."""

    def __init__(
        self, case: Case, template: str = "casework/not_allowed_now.j2", **context: object
    ) -> None:
        super().__init__(template)
        self.case = Snapshot(case.number, case.status)
        self.template, self.context = template, context


@dataclass
class Moved:
    case: Case
    event: CaseEvent | None
    notices: list[Notice] = field(default_factory=list)


async def locked(
    session: AsyncSession, number_or_id: str | int, actor: Actor, right: Right
) -> tuple[Case, CaseTarget]:
    """The case locked for this transaction, once the actor's right is checked."""
    return await _locked(session, number_or_id, actor, right)


async def _locked(
    session: AsyncSession, number_or_id: str | int, actor: Actor, right: Right
) -> tuple[Case, CaseTarget]:
    """The case locked for this transaction, once the actor's right is checked."""
    case = await cases.lock(session, number_or_id)
    if case is None:
        raise CaseNotFound(str(number_or_id))
    target = CaseTarget(case, await cases.team_of(session, case.id))
    policy.check(actor, right, target)
    return case, target


async def visible_to_staff(session: AsyncSession, number: str, actor: Actor) -> Case | None:
    """The case if the staff actor may see it (for its printable form), else None."""
    case = await cases.by_number(session, number)
    if case is None:
        return None
    return (
        case
        if policy.sees(actor, CaseTarget(case, await cases.team_of(session, case.id)))
        else None
    )


def _refuse_step(case: Case, verb: CaseVerb) -> None:
    """Stale if the case was once where `verb` applied (someone acted first), else not now."""
    step = STEPS[verb]
    if CaseStatus(case.status) in step.sources:
        return
    seen = {CaseStatus(e.to_status) for e in case.events}
    if seen & step.sources:
        raise StaleAction(case)
    raise NotNow(case)


def _record(
    case: Case, verb: CaseVerb, actor: Actor, note: str | None, now: dt.datetime
) -> CaseEvent:
    step = STEPS[verb]
    shown = note if step.note_shown else None
    keep_figures(case, step.target, now)
    event = cases.record(case, step.target, actor.kind, actor.id, shown)
    event.at = now
    set_clock(case, now)
    return event


def keep_figures(case: Case, target: CaseStatus, now: dt.datetime) -> None:
    """What the statistics count, kept on the case as it moves: a clock that ran out, and
    the working days from 提交 to 受理 and to 办结."""
    if case.due_at is not None and now > case.due_at:
        case.late = True
    if target == S.ACCEPTED:
        case.accepted_workdays = workdays_between(case.created_at, now)
    elif target == S.COMPLETED:
        case.completed_workdays = workdays_between(case.created_at, now)


async def move(
    session: AsyncSession,
    number_or_id: str | int,
    verb: CaseVerb,
    actor: Actor,
    note: str | None = None,
    now: dt.datetime | None = None,
    links: RatingLinks | None = None,
) -> Moved:
    """One step of the life cycle by staff, the applicant or the system (not RATE/SUPPLIED,
    which have their own operations below); `links` adds a one-time rating link to the
    delivered notice."""
    now = now or utcnow()
    case, _ = await _locked(session, number_or_id, actor, STEPS[verb].right)
    _refuse_step(case, verb)
    if verb == CaseVerb.COMPLETE:
        open_items = [i.name for i in case.items if i.status != "done"]
        if open_items:
            raise NotNow(case, "casework/items_open.j2", names=open_items)
    if verb == CaseVerb.ACCEPT:
        case.handler_opinion, case.handler_id = note, actor.id
    event = _record(case, verb, actor, note, now)
    await session.flush()
    await rollup.count(session, case, rollup.kinds_of(case, STEPS[verb].target), now)
    log.info("case moved number=%s verb=%s by=%s event=%s", case.number, verb, actor, event.id)
    return Moved(case, event, await _notices(session, case, verb, event, note, links, now))


async def _notices(
    session: AsyncSession,
    case: Case,
    verb: CaseVerb,
    event: CaseEvent,
    note: str | None,
    links: RatingLinks | None = None,
    now: dt.datetime | None = None,
) -> list[Notice]:
    key = f"case:{case.number}:event:{event.id}"
    if verb == CaseVerb.WITHDRAW:
        text = render("staff/window_withdrawn.j2", case=case)
        return await window_notices(session, case, text, "withdrawn")
    if verb == CaseVerb.EXPIRE:
        return []
    if verb == CaseVerb.CLOSE:
        return []
    handler = await questions.staff(session, case.handler_id)
    template, context, buttons = _applicant_notice(case, verb, note)
    text = render(template, case=case, handler=handler, **context)
    if verb in (CaseVerb.DELIVER, CaseVerb.PICKUP):  # the 回访 question comes with it
        url = await links.issue(session, case.id, now or utcnow()) if links else None
        text += "\n\n" + render("casework/followup_ask.j2", case=case, rating_url=url)
    return await to_followers(session, case, text, key, buttons)


async def to_followers(
    session: AsyncSession, case: Case, text: str, key: str, buttons: list[list[Button]]
) -> list[Notice]:
    """The applicant's notice, and the same text (without its buttons, which act for the
    owner) to every chat bound to the case with its 查询码."""
    viewers = await cases.viewers(session, case.id)
    return [
        Notice(case.applicant, text, key, buttons),
        *(Notice(viewer, text, f"{key}:viewer:{viewer.id}") for viewer in viewers),
    ]


def _applicant_notice(
    case: Case, verb: CaseVerb, note: str | None
) -> tuple[str, dict[str, object], list[list[Button]]]:
    n = case.number
    if verb == CaseVerb.SUPPLEMENT:
        upload = [[UploadStart(n).button(label("buttons", "upload"))]]
        return "casework/notice_supplement.j2", {"missing": note}, upload
    if verb in (CaseVerb.DELIVER, CaseVerb.PICKUP):
        tracking = note if verb == CaseVerb.DELIVER else None
        return "casework/notice_delivered.j2", {"tracking": tracking}, rating_buttons(n)
    template = {
        CaseVerb.ACCEPT: "casework/notice_accepted.j2",
        CaseVerb.REJECT: "casework/notice_rejected.j2",
        CaseVerb.START: "casework/notice_in_progress.j2",
        CaseVerb.RESUME: "casework/notice_resumed.j2",
        CaseVerb.COMPLETE: "casework/notice_completed.j2",
    }.get(verb, "")
    return template, {"reason": note}, []


def rating_buttons(number: str) -> list[list[Button]]:
    """The five levels of 好差评, the good ones on the first row."""
    return [
        [Rate(number, level).button(label("rating_levels", level)) for level in row]
        for row in bad_ratings.LEVEL_ROWS
    ]


async def window_notices(session: AsyncSession, case: Case, text: str, event: str) -> list[Notice]:
    """The window staff (those on duty, if any) are told, with a button to open the case."""
    handle = [[CaseView(case.number).button(label("buttons", "handle"))]]
    return [
        Notice(staff, text, f"case:{case.number}:{event}", handle)
        for staff in await roster.window_recipients(session)
    ]


async def undelivered_notices(session: AsyncSession, key: str, row_id: int) -> list[Notice]:
    """A case notice no channel could deliver (WeChat after its 48-hour window with no
    template): whoever handles the case, else the window, is asked to phone the applicant."""
    kind, _, rest = key.partition(":")
    case = await cases.by_number(session, rest.split(":", 1)[0]) if kind == "case" else None
    if case is None:
        return []
    text = render("staff/notice_undelivered.j2", case=case, phone=format_phone(case.contact_phone))
    handler = await questions.staff(session, case.handler_id)
    if handler is None:
        return await window_notices(session, case, text, f"undelivered:{row_id}")
    handle = [[CaseView(case.number).button(label("buttons", "handle"))]]
    return [Notice(handler, text, f"case:{case.number}:undelivered:{row_id}", handle)]


# -- the applicant's own operations -------------------------------------------------------


async def supplied(
    session: AsyncSession, number: str, actor: Actor, now: dt.datetime | None = None
) -> Moved:
    """上传完成: the case goes back to 办理中 (its clock resumes) once something was uploaded."""
    now = now or utcnow()
    case, _ = await _locked(session, number, actor, Right.OWN)
    _refuse_step(case, CaseVerb.SUPPLIED)
    asked = max(
        (e.at for e in case.events if e.to_status == S.NEEDS_SUPPLEMENT), default=case.created_at
    )
    uploaded = [f for f in await files.for_case(session, case.id) if f.kind == "supplement"]
    count = sum(1 for f in uploaded if f.created_at >= asked)
    if not count:
        raise NotNow(case, "casework/upload_none.j2")
    event = _record(case, CaseVerb.SUPPLIED, actor, None, now)
    await session.flush()
    handler = await questions.staff(session, case.handler_id)
    text = render("casework/staff_supplement_received.j2", case=case, count=count)
    handle = [[CaseView(case.number).button(label("buttons", "handle"))]]
    key = f"case:{case.number}:event:{event.id}"
    notices = [Notice(handler, text, key, handle)] if handler else []
    return Moved(case, event, notices)


async def rate(
    session: AsyncSession,
    number: str,
    actor: Actor,
    level: RatingLevel,
    channel: str | None,
    limits: BadRatingLimits,
    now: dt.datetime | None = None,
) -> tuple[Moved, CaseRating]:
    """好差评: the one rating of a delivered case closes it; 不满意 or 非常不满意 opens a 差评
    item owned by the case's responsible unit (domain/bad_ratings.py)."""
    now = now or utcnow()
    case, _ = await _locked(session, number, actor, Right.OWN)
    _refuse_step(case, CaseVerb.RATE)
    rating = await cases.rate(session, case, level, channel)
    if rating is None:
        raise StaleAction(case)
    rating.at = now
    event = _record(case, CaseVerb.RATE, actor, None, now)
    await session.flush()
    await rollup.count(session, case, [rollup.rating_kind(level)], now)
    notices = await bad_ratings.open_item(session, case, rating, now, limits)
    return Moved(case, event, notices), rating


# -- staff fields and items ---------------------------------------------------------------


async def update_item(
    session: AsyncSession, number: str, item_id: int, status: str, actor: Actor
) -> tuple[Moved, CaseItem]:
    """An approval item one step on (pending → declared → done); the applicant is told."""
    case = await cases.lock(session, number)
    item = next((i for i in case.items if i.id == item_id), None) if case else None
    if case is None or item is None:
        raise CaseNotFound(number)
    target = CaseTarget(case, await cases.team_of(session, case.id), item)
    policy.check(actor, Right.UPDATE_ITEM, target)
    if ITEM_NEXT.get(item.status) != status:
        if item.status == status or status == "declared":
            raise StaleAction(case)  # someone pressed the same button first
        raise NotNow(case)
    if case.status != S.IN_PROGRESS:
        raise StaleAction(case) if S.IN_PROGRESS in _seen(case) else NotNow(case)
    item.status = status
    case.updated_at = utcnow()
    text = render("casework/notice_item.j2", case=case, item=item)
    key = f"case:{case.number}:item:{item.id}:{status}"
    log.info("case item number=%s item=%s status=%s by=%s", case.number, item.id, status, actor)
    return Moved(case, None, await to_followers(session, case, text, key, [])), item


def _seen(case: Case) -> set[CaseStatus]:
    return {CaseStatus(e.to_status) for e in case.events}


INSTRUCTABLE = frozenset(S) - {S.CLOSED, S.WITHDRAWN, S.REJECTED}


async def instruct(session: AsyncSession, number: str, actor: Actor, text: str) -> Moved:
    """领导批示: written by a leader (or admin) while the case is still being worked."""
    case, _ = await _locked(session, number, actor, Right.INSTRUCT)
    if CaseStatus(case.status) not in INSTRUCTABLE:
        raise StaleAction(case)
    case.leader_instruction = text
    case.updated_at = utcnow()
    handler = await questions.staff(session, case.handler_id)
    notices = []
    if handler is not None:
        notice = render("casework/staff_instructed.j2", case=case)
        key = f"case:{case.number}:instruction:{int(case.updated_at.timestamp() * 1e6)}"
        handle = [[CaseView(case.number).button(label("buttons", "handle"))]]
        notices.append(Notice(handler, notice, key, handle))
    log.info("case instructed number=%s by=%s", case.number, actor)
    return Moved(case, None, notices)


async def ask_leader(session: AsyncSession, number: str, actor: Actor, leader_id: int) -> Moved:
    """The window asks a leader for a 领导批示; the leader may then see and instruct it."""
    case, _ = await _locked(session, number, actor, Right.ASK_LEADER)
    leader = await questions.staff(session, leader_id)
    if leader is None or leader.role != "leader" or not leader.active:
        raise CaseNotFound(number)
    if CaseStatus(case.status) not in INSTRUCTABLE:
        raise StaleAction(case)
    if case.leader_id == leader.id:
        return Moved(case, None, [])  # asked already: the leader has the notice
    case.leader_id = leader.id
    text = render("casework/staff_instruction_asked.j2", case=case)
    button = [[CaseInstruct(case.number).button(label("buttons", "instruct"))]]
    key = f"case:{case.number}:ask_leader:{leader.id}"
    log.info("case leader asked number=%s leader=%s by=%s", case.number, leader.id, actor)
    return Moved(case, None, [Notice(leader, text, key, button)])
