"""差评 items (不满意 / 非常不满意): owned by the case's responsible unit, 回访核实 within
`verify_workdays`, 整改 and 反馈 to the enterprise within `fix_workdays` (BAD_RATING_FIX_DAYS),
then 复核 by 政务服务中心. One locked, checked operation per step, which returns its notices;
the scheduler reminds before the 反馈 deadline and escalates a missed deadline up the ladder
(the unit's 首席责任人, then 政务服务中心's)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.texts import label, render
from domain.buttons import BadRatingView, FixRate
from domain.notices import Notice
from domain.policy import Actor, NotAllowed
from domain.reminders import Services
from services.workdays import add_workdays, workdays_between
from storage import bad_ratings, questions, roster
from storage.models import (
    ActorKind,
    BadRating,
    BadRatingStatus,
    Case,
    CaseRating,
    RatingLevel,
    Role,
    Staff,
    utcnow,
)

log = logging.getLogger(__name__)
B = BadRatingStatus
JOB_BATCH = 100  # items a job takes on per tick


@dataclass(frozen=True)
class BadRatingLimits:
    verify_workdays: int = 1  # 回访核实: a call to the enterprise, outcome recorded
    fix_workdays: int = 15  # 整改 and 反馈 (BAD_RATING_FIX_DAYS; some provinces use 5)
    remind_workdays: int = 2  # the owners are reminded this many working days before 反馈 is due


class Step(StrEnum):
    VERIFY = "verify"  # 核实
    FIX = "fix"  # 整改 and 反馈
    REVIEW = "review"  # 复核


# The one transitions table of the item: step → (from, to).
STEPS: dict[Step, tuple[BadRatingStatus, BadRatingStatus]] = {
    Step.VERIFY: (B.VERIFYING, B.FIXING),
    Step.FIX: (B.FIXING, B.REVIEWING),
    Step.REVIEW: (B.REVIEWING, B.CLOSED),
}


class ItemNotFound(Exception):
    """No such 差评 item (or none this actor may know of)."""


class ItemMoved(Exception):
    """The item is not where this step applies (someone acted first, or not yet)."""

    def __init__(self, item: BadRating) -> None:
        super().__init__(item.status)
        self.status = item.status


def owns(actor: Actor, item: BadRating) -> bool:
    """The responsible unit's staff (and administrators) verify, fix and report back."""
    if actor.kind != ActorKind.STAFF:
        return False
    return actor.role == Role.ADMIN or (
        actor.unit_id is not None and actor.unit_id == item.department_id
    )


def reviews(actor: Actor) -> bool:
    """复核 is 政务服务中心's: its chief, and the administrators."""
    return actor.kind == ActorKind.STAFF and (
        actor.role == Role.ADMIN
        or (actor.role == Role.CHIEF and actor.unit_code == roster.LEAD_UNIT)
    )


def may(actor: Actor, step: Step, item: BadRating) -> bool:
    return reviews(actor) if step == Step.REVIEW else owns(actor, item)


def sees(actor: Actor, item: BadRating) -> bool:
    return owns(actor, item) or reviews(actor)


def view_button(item: BadRating) -> list[list[Button]]:
    return [[BadRatingView(item.id).button(label("buttons", "bad_rating_view"))]]


async def responsible_unit(session: AsyncSession, case: Case) -> int | None:
    """The unit answering for the case: the one with most of its approval items; for a case
    of 其他事项 only, its handler's, else 政务服务中心 (the window)."""
    unit = await bad_ratings.main_unit(session, case.id)
    if unit is not None:
        return unit
    handler = await questions.staff(session, case.handler_id)
    if handler is not None:
        return handler.department_id
    lead = await roster.department_by_code(session, roster.LEAD_UNIT)
    return lead.id if lead else None


async def open_item(
    session: AsyncSession,
    case: Case,
    rating: CaseRating,
    now: dt.datetime,
    limits: BadRatingLimits,
) -> list[Notice]:
    """A 不满意 or 非常不满意 rating opens the item; the unit's people are told at once."""
    if rating.level not in (RatingLevel.DISSATISFIED, RatingLevel.VERY_DISSATISFIED):
        return []
    item = BadRating(
        rating_id=rating.id,
        case_id=case.id,
        department_id=await responsible_unit(session, case),
        status=B.VERIFYING,
        opened_at=now,
        verify_due_at=add_workdays(now, limits.verify_workdays),
        fix_due_at=add_workdays(now, limits.fix_workdays),
        escalation_level=0,
    )
    session.add(item)
    await session.flush()
    log.info("bad rating opened item=%s case=%s unit=%s", item.id, case.id, item.department_id)
    text = render("ratings/staff_opened.j2", case=case, rating=rating, item=item)
    people = await bad_ratings.unit_people(session, item.department_id)
    return [Notice(p, text, f"bad_rating:{item.id}:opened", view_button(item)) for p in people]


async def step(
    session: AsyncSession,
    item_id: int,
    verb: Step,
    actor: Actor,
    note: str,
    now: dt.datetime | None = None,
) -> tuple[BadRating, list[Notice]]:
    """核实, 整改/反馈 or 复核: checked, recorded, and the notices it causes."""
    now = now or utcnow()
    item = await bad_ratings.lock(session, item_id)
    if item is None or not sees(actor, item):
        raise ItemNotFound(str(item_id))
    if not may(actor, verb, item):
        raise NotAllowed()
    source, target = STEPS[verb]
    if item.status != source:
        raise ItemMoved(item)
    item.status = target
    found = await bad_ratings.with_case(session, item.id)
    assert found is not None
    _, case, rating = found
    notices: list[Notice] = []
    if verb == Step.VERIFY:
        item.verified_at, item.verified_by, item.verify_note = now, actor.id, note
    elif verb == Step.FIX:
        item.fixed_at, item.fixed_by, item.fix_note = now, actor.id, note
        notices += _told_of_outcome(case, item)
        text = render("ratings/staff_review_asked.j2", case=case, item=item, rating=rating)
        lead = await roster.department_by_code(session, roster.LEAD_UNIT)
        for person in await bad_ratings.reviewers(session, lead.id if lead else None):
            notices.append(Notice(person, text, f"bad_rating:{item.id}:review", view_button(item)))
    else:
        item.reviewed_at, item.reviewed_by, item.review_note = now, actor.id, note
        text = render("ratings/staff_reviewed.j2", case=case, item=item)
        for person in await bad_ratings.unit_people(session, item.department_id):
            notices.append(Notice(person, text, f"bad_rating:{item.id}:reviewed"))
    await session.flush()
    log.info("bad rating step item=%s step=%s by=%s", item.id, verb, actor)
    return item, notices


def _told_of_outcome(case: Case, item: BadRating) -> list[Notice]:
    """反馈: the enterprise reads what was done and may rate the fix once."""
    text = render("ratings/applicant_outcome.j2", case=case, item=item)
    rows = [
        [FixRate(item.id, level).button(label("rating_levels", level)) for level in row]
        for row in LEVEL_ROWS
    ]
    return [Notice(case.applicant, text, f"bad_rating:{item.id}:outcome", rows)]


LEVEL_ROWS = (
    (RatingLevel.VERY_SATISFIED, RatingLevel.SATISFIED, RatingLevel.BASIC),
    (RatingLevel.DISSATISFIED, RatingLevel.VERY_DISSATISFIED),
)


async def rate_fix(
    session: AsyncSession,
    item_id: int,
    actor: Actor,
    level: RatingLevel,
    now: dt.datetime | None = None,
) -> BadRating:
    """The enterprise rates the fix, once, after 反馈 (their own case's item only)."""
    item = await bad_ratings.lock(session, item_id)
    found = await bad_ratings.with_case(session, item_id) if item else None
    if item is None or found is None or actor.kind != ActorKind.APPLICANT:
        raise ItemNotFound(str(item_id))
    if found[1].applicant_id != actor.id:
        raise ItemNotFound(str(item_id))
    if item.fixed_at is None or item.fix_level is not None:
        raise ItemMoved(item)
    item.fix_level, item.fix_rated_at = level, now or utcnow()
    log.info("bad rating fix rated item=%s level=%s", item.id, level)
    return item


# -- the scheduler's job -------------------------------------------------------------------


async def chase_bad_ratings(
    services: Services, now: dt.datetime, limits: BadRatingLimits = BadRatingLimits()
) -> int:
    """Remind the owners before 反馈 is due; escalate a missed 核实 to the unit's chief and a
    missed 反馈 to the unit's chief and 政务服务中心's. Each once; returns notices queued."""
    from domain import notices as outbox

    sent = 0
    async with services.db.transaction(immediate=True) as session:
        found: list[Notice] = []
        for item in await bad_ratings.past_fix(session, now, JOB_BATCH):
            found += await _escalate(session, item, bad_ratings.FIX_MISSED)
        for item in await bad_ratings.past_verify(session, now, JOB_BATCH):
            found += await _escalate(session, item, bad_ratings.VERIFY_MISSED)
        horizon = now + dt.timedelta(days=limits.remind_workdays + 10)  # the exact test follows
        for item in await bad_ratings.fix_due_soon(session, horizon, JOB_BATCH):
            if item.escalation_level >= bad_ratings.FIX_MISSED:
                continue
            if workdays_between(now, item.fix_due_at) >= limits.remind_workdays:
                continue
            item.reminded_at = now
            text = render("ratings/staff_reminder.j2", item=item)
            people = await bad_ratings.unit_people(session, item.department_id)
            found += [
                Notice(p, text, f"bad_rating:{item.id}:reminder", view_button(item)) for p in people
            ]
        outbox.enqueue(session, found)
        sent = len(found)
    return sent


async def _escalate(session: AsyncSession, item: BadRating, level: int) -> list[Notice]:
    item.escalation_level = level
    people: list[Staff] = []
    chief = await questions.chief_of(session, item.department_id)
    if chief is not None:
        people.append(chief)
    if level >= bad_ratings.FIX_MISSED:
        lead = await roster.department_by_code(session, roster.LEAD_UNIT)
        lead_chief = await questions.chief_of(session, lead.id if lead else None)
        if lead_chief is not None and lead_chief not in people:
            people.append(lead_chief)
    template = "ratings/staff_escalated.j2"
    text = render(template, item=item, fix=level >= bad_ratings.FIX_MISSED)
    log.info("bad rating escalated item=%s level=%s", item.id, level)
    return [
        Notice(p, text, f"bad_rating:{item.id}:escalated:{level}", view_button(item))
        for p in people
    ]
