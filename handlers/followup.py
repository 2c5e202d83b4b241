"""回访: the applicant's rating closes a delivered case (the time limits: domain/case_jobs.py)."""

from __future__ import annotations

import logging

from chat.callbacks import Prompt
from chat.events import Reply
from dialogs.texts import label, render
from domain import cases as life
from domain import notices
from domain.buttons import Rate
from domain.cases import CaseNotFound, NotNow, StaleAction
from domain.policy import Actor, NotAllowed
from handlers.context import Context
from handlers.menu import with_menu
from handlers.routes import Routes
from storage import cases

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
