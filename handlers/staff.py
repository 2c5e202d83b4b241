"""What staff do in the chat: bind their account, answer, forward (转办) and close questions."""

from __future__ import annotations

import datetime as dt
import logging

from chat.callbacks import CallbackData, Prompt
from chat.events import Reply
from dialogs.texts import label, render
from domain.buttons import QuestionDone, QuestionForward, QuestionReply, QuestionShow
from domain.notices import notify_question_staff, staff_question_buttons
from domain.policy import is_admin
from domain.reminders import keep_answer_figures
from handlers.consult import (
    FollowQuestion,
    age_label,
    assign,
)
from handlers.context import Context
from handlers.pages import Cursor, PageRef
from handlers.routes import Routes
from services import notify
from storage import questions, roster
from storage.models import Applicant, QuestionStatus, Staff, utcnow

log = logging.getLogger(__name__)
INVITE_VALIDITY = dt.timedelta(hours=72)
routes = Routes("staff")


class ForwardTo(CallbackData, prefix="s:fwdto"):
    question_id: int
    unit: str


class ToggleDuty(CallbackData, prefix="s:duty"):
    staff_id: int


class OpenPage(PageRef, prefix="s:open"): ...


class ReplyText(Prompt, prefix="reply"):
    """The answer a staff member types after 回复."""

    question_id: int


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


async def bind(ctx: Context, code: str) -> list[Reply]:
    """`/bind CODE`: attach this chat to the staff member the one-time code was made for."""
    user = ctx.event.user
    async with ctx.transaction() as session:
        staff = await questions.redeem_invite(session, code) if code else None
        if staff is None:
            log.warning("staff bind refused: unknown, used or expired code user=%s", user.key)
            return _reply("staff/bind_failed.j2")
        await roster.bind_chat(session, staff, user.channel, user.chat_id)
    log.info("staff bound staff=%s", staff.id)
    return _reply("staff/bound.j2", staff=staff)


@routes.on(QuestionShow, staff=True)
async def show(ctx: Context, staff: Staff, question_id: int) -> list[Reply]:
    """The question with the buttons its owner (or the specialist it was forwarded to) may
    press; the work list at /desk links here."""
    async with ctx.services.db.sessions() as session:
        question = await questions.get(session, question_id)
    if question is None:
        return _reply("staff/question_not_found.j2")
    mine = staff.id in (question.owner_id, question.assignee_id)
    if not mine and not is_admin(staff):
        return _reply("staff/question_not_found.j2")
    text = render("staff/question_shown.j2", question=question)
    buttons = staff_question_buttons(question, question.owner_id == staff.id) if mine else []
    return [Reply(text, buttons)]


@routes.on(QuestionReply, staff=True)
async def start_reply(ctx: Context, staff: Staff, question_id: int) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        question = await questions.get(session, question_id)
    if question is None or staff.id not in (question.owner_id, question.assignee_id):
        return _reply("staff/question_not_found.j2")
    ctx.state["mode"] = ReplyText(question_id).pack()
    return _reply("staff/reply_prompt.j2", question=question)


async def send_reply(ctx: Context, staff: Staff, question_id: int, text: str) -> list[Reply]:
    """The staff member's answer reaches the enterprise naming the owner; the owner is told."""
    async with ctx.transaction(immediate=True) as session:
        question = await questions.get(session, question_id, lock=True)
        if question is None or staff.id not in (question.owner_id, question.assignee_id):
            return _reply("staff/question_not_found.j2")
        message = await questions.add_message(session, question, "staff", staff.id, text)
        question.status = QuestionStatus.ANSWERED
        if question.answered_at is None:  # the first answer: what the statistics count
            keep_answer_figures(question, utcnow())
        question.answered_at = utcnow()
        owner = await questions.staff(session, question.owner_id)
        applicant = await session.get(Applicant, question.applicant_id)
        assert owner is not None and applicant is not None
        follow = [[FollowQuestion(question.id).button(label("buttons", "follow_up"))]]
        notify.to_applicant(
            session,
            applicant,
            render("consult/reply.j2", question=question, owner=owner, text=text),
            f"question:{question.id}:message:{message.id}",
            follow,
        )
        if owner.id != staff.id:
            author = await questions.staff(session, staff.id)
            notice = render(
                "staff/question_answered.j2", question=question, author=author, text=text
            )
            notify_question_staff(session, owner, notice, question, f"message:{message.id}:owner")
    log.info("question answered id=%s by=%s", question_id, staff.id)
    return _reply("staff/reply_sent.j2")


@routes.on(QuestionForward, staff=True)
async def choose_forward(ctx: Context, staff: Staff, question_id: int) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        question = await questions.get(session, question_id)
        departments = await roster.departments(session)
    if question is None or question.owner_id != staff.id:
        return _reply("staff/question_not_found.j2")
    rows = [
        [ForwardTo(question_id, d.code).button(d.name)]
        for d in departments
        if d.id != staff.department_id
    ]
    return [Reply(render("staff/forward_choose.j2"), rows)]


@routes.on(ForwardTo, staff=True)
async def forward(ctx: Context, staff: Staff, question_id: int, unit: str) -> list[Reply]:
    """转办: the unit's specialist answers; the owner stays the owner."""
    async with ctx.transaction(immediate=True) as session:
        question = await questions.get(session, question_id, lock=True)
        if question is None or question.owner_id != staff.id:
            return _reply("staff/question_not_found.j2")
        candidates = await questions.specialists(session, unit)
        if not candidates:
            return _reply("dialog/expired.j2")
        assignee = await questions.staff(session, candidates[0].id)
        owner = await questions.staff(session, staff.id)
        assert assignee is not None and owner is not None
        question.assignee_id = assignee.id
        question.department_id = assignee.department_id
        question.status = QuestionStatus.FORWARDED
        notice = render("staff/question_forwarded.j2", question=question, owner=owner)
        notify_question_staff(session, assignee, notice, question, f"forwarded:{assignee.id}")
    log.info("question forwarded id=%s to=%s", question_id, assignee.id)
    return _reply("staff/forward_done.j2", question=question, assignee=assignee)


@routes.on(QuestionDone, staff=True)
async def close(ctx: Context, staff: Staff, question_id: int) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        question = await questions.get(session, question_id, lock=True)
        if question is None or question.owner_id != staff.id:
            return _reply("staff/question_not_found.j2")
        if question.status != QuestionStatus.CLOSED:
            question.status = QuestionStatus.CLOSED
            applicant = await session.get(Applicant, question.applicant_id)
            assert applicant is not None
            notify.to_applicant(
                session,
                applicant,
                render("consult/closed.j2", question=question),
                f"question:{question.id}:closed",
            )
    return _reply("staff/question_closed.j2", question=question)


# -- administrators -----------------------------------------------------------------------


async def duty(ctx: Context) -> list[Reply]:
    if not is_admin(ctx.staff):
        return _reply("staff/not_allowed.j2")
    async with ctx.services.db.sessions() as session:
        people = await questions.window_staff(session)
    rows = [[ToggleDuty(p.id).button(p.name)] for p in people]
    return [Reply(render("staff/duty.j2", people=people), rows)]


@routes.on(ToggleDuty, actor=True)
async def toggle_duty(ctx: Context, staff_id: int) -> list[Reply]:
    """Switch a window staff member's duty; queued questions go to whoever comes on duty."""
    if not is_admin(ctx.staff):
        return _reply("staff/not_allowed.j2")
    async with ctx.transaction() as session:
        people = {p.id: p for p in await questions.window_staff(session)}
        person = people.get(staff_id)
        if person is None:
            return _reply("dialog/expired.j2")
        person.on_duty = not person.on_duty
        await session.flush()
        for question in await questions.unassigned(session):
            owner = await questions.first_responder(session)
            if owner is None:
                break
            await assign(session, question, owner, None)
            await session.flush()
    return await duty(ctx)


@routes.on(OpenPage, actor=True)
async def open_list(ctx: Context, page_text: str = "0") -> list[Reply]:
    """`/open`: the questions not yet closed, a page at a time (administrators)."""
    if not is_admin(ctx.staff):
        return _reply("staff/not_allowed.j2")
    now = utcnow()
    cursor = Cursor.parse(page_text)
    async with ctx.services.db.sessions() as session:
        total = await questions.count_open(session)
        found = await questions.open_page(session, cursor.after, cursor.before, cursor.size)
        if not found and cursor != Cursor():  # the page's anchor is gone: start over
            cursor = Cursor()
            found = await questions.open_page(session, None, None, cursor.size)
    found, page, pager = cursor.window(found, lambda row: row[0].id, total, OpenPage)
    rows = [
        {"question": question, "age": age_label(question, now), "owner": owner}
        for question, owner in found
    ]
    text = render("staff/open_questions.j2", rows=rows, page=page)
    return [Reply(text, [pager] if pager else [])]


async def reassign(ctx: Context, argument: str) -> list[Reply]:
    if not is_admin(ctx.staff):
        return _reply("staff/not_allowed.j2")
    qid, _, name = argument.partition(" ")
    if not qid.isdigit() or not name.strip():
        return _reply("staff/reassign_usage.j2")
    async with ctx.transaction(immediate=True) as session:
        question = await questions.get(session, int(qid), lock=True)
        target = await roster.staff_by_name(session, name.strip())
        if question is None or target is None:
            return _reply("staff/reassign_usage.j2")
        owner = await questions.staff(session, target.id)
        assert owner is not None
        await assign(session, question, owner, None)
    return _reply("staff/reassigned.j2", question=question, owner=owner)


# -- routes -------------------------------------------------------------------------------

routes.command("bind")(bind)
routes.command("reassign", actor=True)(reassign)

routes.command("duty", actor=True, bare=True)(duty)
routes.command("open", actor=True, bare=True)(open_list)
routes.on_text(ReplyText, send_reply, staff=True)
