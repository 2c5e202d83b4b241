"""回访 and time limits: ratings close delivered cases; reminders keep staff within limits."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.texts import label, render
from handlers import notify
from handlers.casework import LIMITS, CaseLimits
from handlers.context import Context, Services
from handlers.events import Button, Reply
from handlers.menu import with_menu
from handlers.workdays import workdays_between
from storage import applicants, cases, questions, roster
from storage.models import ActorKind, Case, CaseRating, CaseStatus

log = logging.getLogger(__name__)
PREFIX = "r"
LOW_SCORE = 2


async def button(ctx: Context, rest: str) -> list[Reply]:
    """`r:<number>:<1-5>` rates once and closes the case; `r:<number>:skip` skips the comment."""
    number, _, choice = rest.partition(":")
    user = ctx.event.user
    if choice == "skip":
        ctx.state.pop("mode", None)
        return [with_menu("casework/followup_thanks.j2", case={"number": number[:20]})]
    if choice not in {"1", "2", "3", "4", "5"}:
        return [with_menu("dialog/expired.j2")]
    async with ctx.services.db.transaction() as session:
        applicant = await applicants.find(session, user.channel, user.chat_id)
        case = await cases.for_applicant(session, applicant.id, number) if applicant else None
        if case is None:
            return [with_menu("cases/not_found.j2")]
        if case.status != CaseStatus.DELIVERED:
            return [with_menu("casework/followup_already.j2")]
        rating = await cases.rate(session, case, int(choice), None)
        if rating is None:
            return [with_menu("casework/followup_already.j2")]
        cases.transition(case, CaseStatus.CLOSED, ActorKind.APPLICANT, case.applicant_id)
        case.due_at = None
        if rating.score <= LOW_SCORE:
            await _second_follow_up(session, case, rating)
    log.info("case rated number=%s score=%s", number, choice)
    ctx.state["mode"] = f"comment:{number}"
    skip = [[Button(label("buttons", "skip"), f"{PREFIX}:{number}:skip")]]
    return [Reply(render("casework/followup_comment.j2"), skip)]


async def comment(ctx: Context, number: str, text: str) -> list[Reply]:
    user = ctx.event.user
    async with ctx.services.db.transaction() as session:
        applicant = await applicants.find(session, user.channel, user.chat_id)
        case = await cases.for_applicant(session, applicant.id, number) if applicant else None
        rating = await cases.rating_of(session, case.id) if case else None
        if case is None or rating is None:
            return [with_menu("cases/not_found.j2")]
        rating.comment = text[:1000]
        if rating.score <= LOW_SCORE:
            await _second_follow_up(session, case, rating, suffix="comment")
    return [with_menu("casework/followup_thanks.j2", case=case)]


async def _second_follow_up(
    session: AsyncSession, case: Case, rating: CaseRating, suffix: str = "score"
) -> None:
    """A low score goes to the 首席责任人 of the handler's unit for a second follow-up."""
    handler = await questions.staff(session, case.handler_id)
    department_id = handler.department_id if handler else None
    if department_id is None:
        lead = await roster.department_by_code(session, roster.LEAD_UNIT)
        department_id = lead.id if lead else None
    chief = await questions.chief_of(session, department_id)
    text = render("casework/staff_low_rating.j2", case=case, rating=rating)
    notify.to_staff(session, chief, text, f"case:{case.number}:low_rating:{suffix}")


async def chase_cases(services: Services, now: dt.datetime, limits: CaseLimits = LIMITS) -> int:
    """Remind handlers before a case goes overdue; close unanswered 回访 after the limit."""
    sent = 0
    async with services.db.transaction() as session:
        for case in await cases.clocked(session):
            if case.status == CaseStatus.DELIVERED:
                delivered = max(e.at for e in case.events if e.to_status == CaseStatus.DELIVERED)
                if workdays_between(delivered, now) >= limits.follow_up_close_workdays:
                    cases.transition(case, CaseStatus.CLOSED, ActorKind.SYSTEM, None)
                    case.due_at = None
                continue
            if case.due_at is None or case.reminded_at is not None:
                continue
            if now >= case.due_at - limits.remind_before:
                handler = await questions.staff(session, case.handler_id)
                people = [handler] if handler else await roster.window_recipients(session)
                text = render("casework/staff_reminder.j2", case=case)
                view = [[Button(label("buttons", "handle"), f"w:view:{case.number}")]]
                for person in people:
                    notify.to_staff(
                        session, person, text, f"case:{case.number}:due:{case.due_at:%s}", view
                    )
                    sent += 1
                case.reminded_at = now
    return sent
