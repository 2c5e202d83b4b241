"""Staff follow a 差评 item in the chat: open it, record 核实, 整改/反馈 and 复核, list the
open ones (/bad). Every step is checked by domain/bad_ratings.py against the actor."""

from __future__ import annotations

import logging

from chat.callbacks import CallbackData, Prompt
from chat.events import Button, Reply
from dialogs.fields import format_phone
from dialogs.texts import label, render
from domain import bad_ratings, notices
from domain.bad_ratings import ItemMoved, ItemNotFound, Step
from domain.buttons import BadRatingView
from domain.policy import Actor, NotAllowed
from handlers.context import Context
from handlers.routes import Routes, staff_of
from storage import bad_ratings as items
from storage.models import BadRating, Role, Staff

log = logging.getLogger(__name__)
routes = Routes("bad_ratings")
MAX_NOTE = 2000  # characters of a 核实 / 整改 / 复核 note
LIST_LIMIT = 20
NEXT_STEP = {"verifying": Step.VERIFY, "fixing": Step.FIX, "reviewing": Step.REVIEW}


class BadRatingStep(CallbackData, prefix="br:step"):
    verb: Step
    item_id: int


class BadRatingNote(Prompt, prefix="br_note"):
    """The note typed after pressing a step's button."""

    verb: Step
    item_id: int


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


def _buttons(actor: Actor, item: BadRating) -> list[list[Button]]:
    verb = NEXT_STEP.get(item.status)
    if verb is None or not bad_ratings.may(actor, verb, item):
        return []
    return [[BadRatingStep(verb, item.id).button(label("buttons", f"bad_rating_{verb}"))]]


@routes.on(BadRatingView, staff=True)
async def view(ctx: Context, staff: Staff, item_id: int) -> list[Reply]:
    actor = Actor.of_staff(staff)
    async with ctx.services.db.sessions() as session:
        found = await items.with_case(session, item_id)
    if found is None or not bad_ratings.sees(actor, found[0]):
        return _reply("ratings/not_found.j2")
    item, case, rating = found
    text = render(
        "ratings/item.j2",
        item=item,
        case=case,
        rating=rating,
        phone=format_phone(case.contact_phone),
    )
    return [Reply(text, _buttons(actor, item))]


@routes.on(BadRatingStep, staff=True)
async def ask_note(ctx: Context, staff: Staff, verb: Step, item_id: int) -> list[Reply]:
    actor = Actor.of_staff(staff)
    async with ctx.services.db.sessions() as session:
        item = await items.get(session, item_id)
    if item is None or not bad_ratings.sees(actor, item):
        return _reply("ratings/not_found.j2")
    if not bad_ratings.may(actor, verb, item):
        return _reply("staff/not_allowed.j2")
    if NEXT_STEP.get(item.status) != verb:
        return _reply("ratings/moved.j2", status=item.status)
    ctx.state["mode"] = BadRatingNote(verb, item_id).pack()
    return _reply(f"ratings/prompt_{verb}.j2")


async def record(ctx: Context, staff: Staff, verb: Step, item_id: int, text: str) -> list[Reply]:
    if len(text) > MAX_NOTE:
        ctx.state["mode"] = BadRatingNote(verb, item_id).pack()
        return _reply("ratings/too_long.j2", limit=MAX_NOTE)
    try:
        async with ctx.transaction(immediate=True) as session:
            _, queued = await bad_ratings.step(session, item_id, verb, Actor.of_staff(staff), text)
            notices.enqueue(session, queued)
    except ItemNotFound:
        return _reply("ratings/not_found.j2")
    except NotAllowed:
        return _reply("staff/not_allowed.j2")
    except ItemMoved as moved:
        return _reply("ratings/moved.j2", status=moved.status)
    return [Reply(render("ratings/step_done.j2")), *await view(ctx, staff, item_id)]


routes.on_text(BadRatingNote, record, staff=True)


@routes.command("bad", staff=True, bare=True)
async def open_items(ctx: Context) -> list[Reply]:
    """/bad: the open 差评 items of the staff member's unit (reviewers and admins: all)."""
    staff = staff_of(ctx)
    actor = Actor.of_staff(staff)
    everyone = staff.role == Role.ADMIN or bad_ratings.reviews(actor)
    async with ctx.services.db.sessions() as session:
        found = await items.open_for_unit(
            session, None if everyone else staff.department_id, LIST_LIMIT
        )
    rows = [
        [BadRatingView(i.id).button(f"#{i.id} {label('bad_rating_status', i.status)}")]
        for i in found
    ]
    return [Reply(render("ratings/list.j2", items=found), rows)]
