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
from services.workdays import started_before, workdays_between
from storage import cases, questions, roster

log = logging.getLogger(__name__)
routes = Routes("followup")


class Comment(Prompt, prefix="comment"):
    """The comment typed after a 回访 rating."""

    number: str


@routes.button(Rate, applicant=True)
async def rate(ctx: Context, data: Rate) -> list[Reply]:
    """`r:<number>:<1-5>` rates once and closes the case; `r:<number>:skip` skips the comment."""
    number, choice = data.number, data.choice
    if choice == "skip":
        ctx.state.pop("mode", None)
        return [with_menu("casework/followup_thanks.j2", case={"number": number[:20]})]
    if choice not in {"1", "2", "3", "4", "5"}:
        return [with_menu("dialog/expired.j2")]
    applicant = ctx.sender()
    if applicant is None:
        return [with_menu("cases/not_found.j2")]
    actor = Actor.of_applicant(applicant.id)
    try:
        async with ctx.services.db.transaction(immediate=True) as session:
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


@routes.prompt(Comment, applicant=True)
async def comment(ctx: Context, data: Comment, text: str) -> list[Reply]:
    number, applicant = data.number, ctx.sender()
    async with ctx.services.db.transaction(immediate=True) as session:
        case = await cases.for_applicant(session, applicant.id, number) if applicant else None
        rating = await cases.rating_of(session, case.id) if case else None
        if case is None or rating is None:
            return [with_menu("cases/not_found.j2")]
        rating.comment = text[:1000]
        notices.enqueue(session, await life.low_rating_notices(session, case, rating, "comment"))
    return [with_menu("casework/followup_thanks.j2", case=case)]


BATCH = 100  # cases read and changed per transaction
MAX_BATCHES = 10  # per job and tick: a backlog is worked off over several ticks


async def chase_cases(services: Services, now: dt.datetime, limits: CaseLimits = LIMITS) -> int:
    """Remind handlers before a case goes overdue; close unanswered 回访 after the limit.
    Only the cases that can be due now are read (indexed filters), a batch at a time."""
    await _close_unanswered_follow_ups(services, now, limits)
    return await _remind_handlers(services, now, limits)


async def _close_unanswered_follow_ups(
    services: Services, now: dt.datetime, limits: CaseLimits
) -> None:
    before = started_before(now, limits.follow_up_close_workdays)
    cursor = None
    for _ in range(MAX_BATCHES):
        async with services.db.transaction(immediate=True) as session:
            batch = await cases.waiting_for_follow_up(session, before, cursor, BATCH)
            for case_id, asked_at in batch:
                if workdays_between(asked_at, now) >= limits.follow_up_close_workdays:
                    try:
                        await life.move(session, case_id, CaseVerb.EXPIRE, SYSTEM, now=now)
                    except (CaseNotFound, StaleAction):  # rated or closed meanwhile
                        continue
        if len(batch) < BATCH:
            break
        cursor = batch[-1][1], batch[-1][0]


async def _remind_handlers(services: Services, now: dt.datetime, limits: CaseLimits) -> int:
    sent, cursor = 0, None
    for _ in range(MAX_BATCHES):
        async with services.db.transaction(immediate=True) as session:
            batch = await cases.due_for_reminder(session, now + limits.remind_before, cursor, BATCH)
            handlers = await questions.staff_by_ids(
                session, {c.handler_id for c in batch if c.handler_id is not None}
            )
            window = (
                await roster.window_recipients(session)
                if any(c.handler_id not in handlers for c in batch)
                else []
            )
            view_label = label("buttons", "handle")
            for case in batch:
                assert case.due_at is not None
                handler = handlers.get(case.handler_id or 0)
                text = render("casework/staff_reminder.j2", case=case)
                view = [[CaseView(case.number).button(view_label)]]
                for person in [handler] if handler else window:
                    notify.to_staff(
                        session, person, text, f"case:{case.number}:due:{case.due_at:%s}", view
                    )
                    sent += 1
                case.reminded_at = now
        if len(batch) < BATCH:
            break
        last = batch[-1]
        assert last.due_at is not None
        cursor = last.due_at, last.id
    return sent
