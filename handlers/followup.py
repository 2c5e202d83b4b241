"""回访 and time limits: ratings close delivered cases; reminders keep staff within limits."""

from __future__ import annotations

import datetime as dt
import logging

from chat.callbacks import Prompt
from chat.events import Reply
from dialogs.texts import label, render
from domain import cases as life
from domain import notices
from domain.buttons import CaseView, Rate
from domain.cases import LIMITS, CaseLimits, CaseNotFound, CaseVerb, NotNow, StaleAction
from domain.policy import SYSTEM, Actor, NotAllowed
from handlers.context import Context, Services
from handlers.menu import with_menu
from handlers.routes import Routes
from services import notify
from services.workdays import workdays_between
from storage import applicants, cases, questions, roster
from storage.models import CaseStatus

log = logging.getLogger(__name__)
routes = Routes("followup")


class Comment(Prompt, prefix="comment"):
    """The comment typed after a 回访 rating."""

    number: str


@routes.button(Rate)
async def rate(ctx: Context, data: Rate) -> list[Reply]:
    """`r:<number>:<1-5>` rates once and closes the case; `r:<number>:skip` skips the comment."""
    number, choice = data.number, data.choice
    user = ctx.event.user
    if choice == "skip":
        ctx.state.pop("mode", None)
        return [with_menu("casework/followup_thanks.j2", case={"number": number[:20]})]
    if choice not in {"1", "2", "3", "4", "5"}:
        return [with_menu("dialog/expired.j2")]
    try:
        async with ctx.services.db.transaction(immediate=True) as session:
            applicant = await applicants.find(session, user.channel, user.chat_id)
            if applicant is None:
                return [with_menu("cases/not_found.j2")]
            actor = Actor.of_applicant(applicant.id)
            moved, _ = await life.rate(session, number, actor, int(choice))
            notices.enqueue(session, moved.notices)
    except (CaseNotFound, NotAllowed):
        return [with_menu("cases/not_found.j2")]
    except (StaleAction, NotNow):
        return [with_menu("casework/followup_already.j2")]
    log.info("case rated number=%s score=%s", number, choice)
    ctx.state["mode"] = Comment(number).pack()
    skip = [[Rate(number, "skip").button(label("buttons", "skip"))]]
    return [Reply(render("casework/followup_comment.j2"), skip)]


@routes.prompt(Comment)
async def comment(ctx: Context, data: Comment, text: str) -> list[Reply]:
    number, user = data.number, ctx.event.user
    async with ctx.services.db.transaction(immediate=True) as session:
        applicant = await applicants.find(session, user.channel, user.chat_id)
        case = await cases.for_applicant(session, applicant.id, number) if applicant else None
        rating = await cases.rating_of(session, case.id) if case else None
        if case is None or rating is None:
            return [with_menu("cases/not_found.j2")]
        rating.comment = text[:1000]
        notices.enqueue(session, await life.low_rating_notices(session, case, rating, "comment"))
    return [with_menu("casework/followup_thanks.j2", case=case)]


async def chase_cases(services: Services, now: dt.datetime, limits: CaseLimits = LIMITS) -> int:
    """Remind handlers before a case goes overdue; close unanswered 回访 after the limit."""
    sent = 0
    async with services.db.transaction(immediate=True) as session:
        for case in await cases.clocked(session):
            if case.status == CaseStatus.DELIVERED:
                delivered = max(e.at for e in case.events if e.to_status == CaseStatus.DELIVERED)
                if workdays_between(delivered, now) >= limits.follow_up_close_workdays:
                    await life.move(session, case.id, CaseVerb.EXPIRE, SYSTEM, now=now)
                continue
            if case.due_at is None or case.reminded_at is not None:
                continue
            if now >= case.due_at - limits.remind_before:
                handler = await questions.staff(session, case.handler_id)
                people = [handler] if handler else await roster.window_recipients(session)
                text = render("casework/staff_reminder.j2", case=case)
                view = [[CaseView(case.number).button(label("buttons", "handle"))]]
                for person in people:
                    notify.to_staff(
                        session, person, text, f"case:{case.number}:due:{case.due_at:%s}", view
                    )
                    sent += 1
                case.reminded_at = now
    return sent
