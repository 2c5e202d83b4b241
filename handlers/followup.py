"""好差评 after 送达: the enterprise picks one of five levels (which closes the case), ticks
the second-level points (or, for a bad level, the reasons), and may write a comment; a bad
level opens a 差评 item (domain/bad_ratings.py). After 反馈 they may rate the fix once."""

from __future__ import annotations

import logging

from chat.callbacks import Prompt
from chat.events import Button, Reply
from dialogs.texts import label, render
from domain import bad_ratings, notices, ratings
from domain import cases as life
from domain.bad_ratings import ItemMoved, ItemNotFound
from domain.buttons import FixRate, Rate, RateDone, RatePoint
from domain.cases import CaseNotFound, NotNow, StaleAction
from domain.policy import Actor, NotAllowed
from handlers.context import Context
from handlers.menu import with_menu
from handlers.routes import Routes
from storage import cases
from storage.models import CaseRating

log = logging.getLogger(__name__)
routes = Routes("followup")
MAX_COMMENT = 1000  # characters of a rating's comment


class Comment(Prompt, prefix="comment"):
    """The comment typed after a rating."""

    number: str


def _points_screen(rating: CaseRating, number: str, verify_days: int) -> Reply:
    bad = ratings.is_bad(rating.level)
    rows: list[list[Button]] = []
    row: list[Button] = []
    for point in ratings.points_for(rating.level):
        mark = "✓ " if point in rating.points else ""
        row.append(RatePoint(number, point).button(mark + label("rating_points", point)))
        if len(row) == 2:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    rows.append([RateDone(number).button(label("buttons", "done"))])
    text = render("ratings/points.j2", rating=rating, bad=bad, verify_days=verify_days)
    return Reply(text, rows)


@routes.button(Rate, applicant=True)
async def rate(ctx: Context, data: Rate) -> list[Reply]:
    """`r:<number>:<level>` rates once and closes the case; `r:<number>:skip` skips the
    comment. An old 1–5 button still counts (5 非常满意 … 1 非常不满意)."""
    number, choice = data.number, data.choice
    if choice == "skip":
        ctx.state.pop("mode", None)
        return [with_menu("casework/followup_thanks.j2", case={"number": number[:20]})]
    level = ratings.level_of(choice)
    applicant = ctx.sender()
    if level is None:
        return [with_menu("dialog/expired.j2")]
    if applicant is None:
        return [with_menu("cases/not_found.j2")]
    actor = Actor.of_applicant(applicant.id)
    limits = ctx.services.bad_ratings
    try:
        async with ctx.transaction(immediate=True) as session:
            moved, rating = await life.rate(
                session, number, actor, level, ctx.event.user.channel, limits
            )
            notices.enqueue(session, moved.notices)
    except (CaseNotFound, NotAllowed):
        return [with_menu("cases/not_found.j2")]
    except (StaleAction, NotNow):
        return [with_menu("casework/followup_already.j2")]
    log.info("case rated number=%s level=%s", number, level)
    return [_points_screen(rating, moved.case.number, limits.verify_workdays)]


async def _own_rating(ctx: Context, number: str) -> tuple[CaseRating | None, str]:
    """The applicant's rating of their own case (locked in the caller's transaction)."""
    applicant = ctx.sender()
    if applicant is None:
        return None, number
    async with ctx.services.db.sessions() as session:
        case = await cases.for_applicant(session, applicant.id, number)
        if case is None or case.applicant_id != applicant.id:
            return None, number
        return await cases.rating_of(session, case.id), case.number


@routes.button(RatePoint, applicant=True)
async def tick(ctx: Context, data: RatePoint) -> list[Reply]:
    """Tick or untick one point; the screen is drawn again with the marks."""
    rating, number = await _own_rating(ctx, data.number)
    if rating is None:
        return [with_menu("cases/not_found.j2")]
    async with ctx.transaction(immediate=True) as session:
        current = await session.get(CaseRating, rating.id, populate_existing=True)
        assert current is not None
        if not ratings.toggle(current, data.point):
            return [with_menu("dialog/expired.j2")]
        screen = _points_screen(current, number, ctx.services.bad_ratings.verify_workdays)
    screen.replace = True
    return [screen]


@routes.button(RateDone, applicant=True)
async def points_done(ctx: Context, data: RateDone) -> list[Reply]:
    """The points are chosen: a comment is asked for (a bad level's free text)."""
    rating, number = await _own_rating(ctx, data.number)
    if rating is None:
        return [with_menu("cases/not_found.j2")]
    ctx.state["mode"] = Comment(number).pack()
    skip = [[Rate(number, "skip").button(label("buttons", "skip"))]]
    return [Reply(render("ratings/comment.j2", bad=ratings.is_bad(rating.level)), skip)]


@routes.prompt(Comment, applicant=True)
async def comment(ctx: Context, data: Comment, text: str) -> list[Reply]:
    if len(text) > MAX_COMMENT:  # the dialog stays here: the prompt is still waiting
        ctx.state["mode"] = data.pack()
        return [Reply(render("ratings/too_long.j2", limit=MAX_COMMENT))]
    rating, number = await _own_rating(ctx, data.number)
    if rating is None:
        return [with_menu("cases/not_found.j2")]
    async with ctx.transaction(immediate=True) as session:
        current = await session.get(CaseRating, rating.id, populate_existing=True)
        assert current is not None
        current.comment = text
    return [with_menu("casework/followup_thanks.j2", case={"number": number})]


@routes.button(FixRate, applicant=True)
async def rate_fix(ctx: Context, data: FixRate) -> list[Reply]:
    """The enterprise rates the fix of their 差评, once."""
    level = ratings.level_of(data.level)
    applicant = ctx.sender()
    if level is None or applicant is None:
        return [with_menu("ratings/not_found.j2")]
    try:
        async with ctx.transaction(immediate=True) as session:
            await bad_ratings.rate_fix(
                session, data.item_id, Actor.of_applicant(applicant.id), level
            )
    except ItemNotFound:
        return [with_menu("ratings/not_found.j2")]
    except ItemMoved:
        return [with_menu("ratings/fix_already.j2")]
    return [with_menu("ratings/fix_rated.j2", level=level)]
