"""What enterprises do: the menu, applying, following and withdrawing their cases."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Reply
from dialogs.application import application
from dialogs.engine import Draft
from dialogs.fields import Value, format_phone
from dialogs.texts import label, render
from domain import audit, notices
from domain import cases as life
from domain.buttons import CaseRef
from domain.cases import CaseNotFound, CaseVerb, NotNow, StaleAction
from domain.key_projects import notify_new_project
from domain.policy import Actor, NotAllowed
from handlers.context import Context
from handlers.menu import menu_button, menu_buttons, with_menu
from handlers.pages import Cursor, PageRef
from handlers.routes import FormRoute, Routes
from services import documents
from storage import agencies, applicants, cases, key_projects, outbox, roster
from storage.cases import CHINA
from storage.models import Case, ProjectKind, Role, Staff, utcnow
from storage.outbox import Recipient

log = logging.getLogger(__name__)
routes = Routes("applicant")


class CaseOpen(CaseRef, prefix="c:open"): ...


class CaseForm(CaseRef, prefix="c:form"): ...  # the 申请表 as files


class CaseWithdraw(CaseRef, prefix="c:withdraw"): ...  # asks to confirm


class CaseWithdrawYes(CaseRef, prefix="c:withdraw_yes"): ...


class CasesPage(PageRef, prefix="c:page"): ...


async def start(ctx: Context) -> list[Reply]:
    async with ctx.transaction() as session:
        subscribed = (await ctx.enrol(session)).subscribed
    return [greeting(subscribed)]


def greeting(subscribed: bool = False) -> Reply:
    """What /start says to an applicant; a page may show it before the chat begins."""
    return with_menu("common/start.j2", subscribed, name=None)


async def menu(ctx: Context) -> list[Reply]:
    applicant = ctx.sender()
    return [with_menu("common/menu.j2", bool(applicant and applicant.subscribed))]


async def contacts(ctx: Context) -> list[Reply]:
    if ctx.staff is not None:
        audit.note(ctx.extra, "contact.view", fields=("staff_phone", "staff_email"))
    if ctx.staff is not None and ctx.staff.role == Role.AGENT:
        return await agent_contacts(ctx, ctx.staff)
    async with ctx.services.db.sessions() as session:
        departments = await roster.contact_list(session)
    text = render("common/contacts.j2", departments=departments)
    return [Reply(text, [[menu_button("menu")]])]


async def agent_contacts(ctx: Context, agent: Staff) -> list[Reply]:
    """An agent's contacts: the teams of the key projects assigned to them, not the roster."""
    people: dict[int, Staff] = {}
    async with ctx.services.db.sessions() as session:
        for project in await agencies.projects_of_agent(session, agent.id):
            for person in await key_projects.team(session, project.id):
                people.setdefault(person.id, person)
    text = render("agencies/contacts.j2", people=list(people.values()))
    return [Reply(text, [[menu_button("menu")]])]


async def set_subscription(ctx: Context, subscribed: bool) -> list[Reply]:
    async with ctx.transaction() as session:
        await applicants.set_subscribed(session, await ctx.enrol(session), subscribed)
    template = "common/subscribed.j2" if subscribed else "common/unsubscribed.j2"
    return [with_menu(template, subscribed)]


# -- applying -----------------------------------------------------------------------------


async def start_application(ctx: Context, restart: bool = False) -> list[Reply]:
    """/apply: the dialog, unless this applicant reached today's number of applications."""
    limit = ctx.services.limits.daily_applications
    applicant = ctx.sender()
    today = 0
    if applicant is not None:
        async with ctx.services.db.sessions() as session:
            today = await applications_today(session, applicant.id)
    if today >= limit and "draft" not in ctx.state:
        log.info("daily application limit applicant=%s", applicant.id if applicant else None)
        return [with_menu("application/daily_limit.j2", limit=limit, kept=False)]
    return apply(ctx, restart)


async def applications_today(session: AsyncSession, applicant_id: int) -> int:
    """Applications submitted since midnight in the new area's time zone."""
    midnight = utcnow().astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    return await cases.count_for_applicant(session, applicant_id, since=midnight)


def apply(ctx: Context, restart: bool = False) -> list[Reply]:
    """Start the application dialog, or offer to continue a draft in progress."""
    engine = ctx.services.engine
    saved = ctx.state.get("draft")
    if saved and not restart:
        return [
            Reply(
                render("application/resume.j2"),
                [[menu_button("resume", "continue"), menu_button("restart")]],
            )
        ]
    draft, step = engine.start("application")
    ctx.state["draft"] = draft.dump()
    return step.replies


def resume(ctx: Context) -> list[Reply]:
    saved = ctx.state.get("draft")
    if not saved:
        return apply(ctx)
    return ctx.services.engine.resume(Draft.load(saved)).replies


async def submit(ctx: Context, token: str, answers: dict[str, Value]) -> list[Reply]:
    """Create the case once per draft token, notify the window, send the printable form."""
    user, services = ctx.event.user, ctx.services
    data = application(answers)
    try:
        async with ctx.transaction(immediate=True) as session:
            applicant = await ctx.enrol(session, lock=True)  # one submission at a time
            existing = await cases.by_submission_key(session, applicant.id, token)
            if existing is not None:
                return already_submitted(existing)
            limit = services.limits.daily_applications
            if await applications_today(session, applicant.id) >= limit:
                ctx.extra["keep_draft"] = True  # nothing typed is lost: submit again tomorrow
                log.info("daily application limit applicant=%s", applicant.id)
                return [with_menu("application/daily_limit.j2", limit=limit, kept=True)]
            case = await cases.create(session, applicant.id, data, token)
            life.set_clock(case, case.created_at)
            if case.project_kind == ProjectKind.KEY:
                project = await key_projects.create_for_case(session, case)
                await notify_new_project(session, project)
            await _notify_window_of_new_case(session, case)
            outbox.enqueue(
                session,
                Recipient(user.channel, user.chat_id),
                render("cases/form_caption.j2", number=case.number),
                key=f"case:{case.number}:form:applicant",
                document=documents.form_spec(case.number),
            )
            number, kind = case.number, case.project_kind
    except IntegrityError:
        # A concurrent handler of the same update won the race: report its case.
        person = ctx.applicant  # enrolled above; the row is the winner's too
        async with services.db.sessions() as session:
            existing = await cases.by_submission_key(session, person.id, token) if person else None
        if existing is None:
            raise
        return already_submitted(existing)
    log.info("case submitted number=%s kind=%s", number, kind)
    return [Reply(render("application/submitted.j2", case=case), menu_buttons())]


def already_submitted(case: Case) -> list[Reply]:
    """The case this applicant's draft created (found by their own submission key)."""
    return [with_menu("application/already_submitted.j2", number=case.number)]


async def _notify_window_of_new_case(session: AsyncSession, case: Case) -> None:
    text = render(
        "application/window_new_case.j2",
        case=case,
        kind_label=label("options", case.project_kind),
        phone=format_phone(case.contact_phone),
        items=[item.name for item in case.items],
    )
    notices.enqueue(session, await life.window_notices(session, case, text, "submitted"))


# -- following cases ----------------------------------------------------------------------


@routes.on(CasesPage, applicant=True)
async def list_cases(ctx: Context, page_text: str = "0") -> list[Reply]:
    """`/cases`: this applicant's cases, newest first, a page at a time."""
    cursor = Cursor.parse(page_text)
    applicant = ctx.sender()
    total, found = 0, []
    async with ctx.services.db.sessions() as session:
        if applicant is not None:
            total = await cases.count_visible(session, applicant.id)
            found = await cases.page_for_applicant(session, applicant.id, cursor.keyset)
            if not found and cursor != Cursor():  # the page's anchor is gone: start over
                cursor = Cursor()
                found = await cases.page_for_applicant(session, applicant.id, cursor.keyset)
    found, page, pager = cursor.window(found, lambda c: c.id, total, CasesPage)
    opening = label("buttons", "open_case")
    rows = [[CaseOpen(case.number).button(f"{opening} {case.number}")] for case in found]
    if pager:
        rows.append(pager)
    rows.append([menu_button("apply"), menu_button("menu")])
    return [Reply(render("cases/list.j2", cases=found, page=page), rows)]


async def _own_case(ctx: Context, number: str) -> Case | None:
    applicant = ctx.sender()
    if applicant is None:
        return None
    async with ctx.services.db.sessions() as session:
        return await cases.for_applicant(session, applicant.id, cases.normalise_code(number))


def _not_found() -> list[Reply]:
    return [with_menu("cases/not_found.j2")]


@routes.on(CaseOpen, applicant=True)
async def show_case(ctx: Context, number: str) -> list[Reply]:
    case = await _own_case(ctx, number)
    if case is None:
        return _not_found()
    text = render("cases/timeline.j2", case=case, events=cases.visible_events(case))
    actions = [CaseForm(case.number).button(label("buttons", "form"))]
    applicant = ctx.sender()
    # Only the chat that applied may withdraw; one following by 查询码 only follows.
    owner = applicant is not None and case.applicant_id == applicant.id
    if owner and life.allowed(case.status, CaseVerb.WITHDRAW):
        actions.append(CaseWithdraw(case.number).button(label("buttons", "withdraw")))
    return [Reply(text, [actions, [menu_button("cases"), menu_button("menu")]])]


CODE_FAILURES = "code_failures"  # conversation state: times of this chat's wrong 查询码


def _chat_code_failures(ctx: Context, window: dt.timedelta) -> list[str]:
    """This chat's wrong 查询码 within the window (ISO times, oldest first)."""
    since = (utcnow() - window).isoformat()
    kept = ctx.state.get(CODE_FAILURES)
    return [t for t in kept if isinstance(t, str) and t > since] if isinstance(kept, list) else []


async def bind_case(ctx: Context, number: str, code: str) -> list[Reply]:
    """`/status BDB-… 查询码`: the code proves the case is theirs; this chat may follow it.
    Wrong codes are limited per case (whoever guesses) and per chat; a chat that already
    follows the case is shown it without a code, so its owner is never locked out."""
    number = cases.normalise_code(number)
    if await _own_case(ctx, number) is not None:
        return await show_case(ctx, number)
    guard = ctx.services.limits.query_codes
    failures = _chat_code_failures(ctx, guard.window)
    minutes = int(guard.window.total_seconds() // 60)
    if len(failures) >= guard.limit:
        return [with_menu("cases/code_locked.j2", minutes=minutes)]
    user = ctx.event.user
    async with ctx.transaction(immediate=True) as session:
        checked = await cases.check_query_code(session, number, code, guard)
        if checked.case is not None:
            await cases.bind_viewer(session, checked.case, (await ctx.enrol(session)).id)
    if checked.case is not None:
        ctx.state.pop(CODE_FAILURES, None)
        return await show_case(ctx, checked.case.number)
    ctx.state[CODE_FAILURES] = [*failures, utcnow().isoformat()]
    log.info("query code refused user=%s locked=%s", user.key, checked.locked)
    if checked.locked:
        return [with_menu("cases/code_locked.j2", minutes=minutes)]
    return [with_menu("cases/bad_code.j2")]


@routes.on(CaseForm, applicant=True)
async def send_form(ctx: Context, number: str) -> list[Reply]:
    case = await _own_case(ctx, number)
    if case is None:
        return _not_found()
    caption = render("cases/form_caption.j2", number=case.number)
    replies = []
    for fmt in ("docx", "pdf"):
        document = await documents.application_form(ctx.services, case, fmt)
        if document is not None:
            replies.append(Reply.doc(document, caption))
    return replies


@routes.on(CaseWithdraw, applicant=True)
async def ask_withdraw(ctx: Context, number: str) -> list[Reply]:
    case = await _own_case(ctx, number)
    if case is None:
        return _not_found()
    if not life.allowed(case.status, CaseVerb.WITHDRAW):
        return [with_menu("cases/cannot_withdraw.j2", case=case)]
    buttons = [
        [
            CaseWithdrawYes(case.number).button(label("buttons", "withdraw_confirm")),
            CaseOpen(case.number).button(label("buttons", "withdraw_keep")),
        ]
    ]
    return [Reply(render("cases/withdraw_confirm.j2", case=case), buttons)]


@routes.on(CaseWithdrawYes, applicant=True)
async def withdraw(ctx: Context, number: str) -> list[Reply]:
    """撤回: the applicant's own step, locked and checked like any other."""
    applicant = ctx.sender()
    if applicant is None:
        return _not_found()
    actor = Actor.of_applicant(applicant.id)
    try:
        async with ctx.transaction(immediate=True) as session:
            moved = await life.move(session, number, CaseVerb.WITHDRAW, actor)
            notices.enqueue(session, moved.notices)
    except (CaseNotFound, NotAllowed):
        return _not_found()
    except (StaleAction, NotNow) as refused:
        return [with_menu("cases/cannot_withdraw.j2", case=refused.case)]
    return [with_menu("cases/withdrawn.j2", case=moved.case)]


async def resubmitted(ctx: Context, token: str) -> list[Reply] | None:
    """A second press of 提交 (the draft is gone) finds the case the first one created."""
    person = ctx.sender()
    if person is None:
        return None
    async with ctx.services.db.sessions() as session:
        case = await cases.by_submission_key(session, person.id, token)
    return already_submitted(case) if case is not None else None


routes.form(
    "application", FormRoute(submit, applicant=True, resubmit=resubmitted, stopped=contacts)
)


@routes.menu_action("restart", applicant=True)
async def _restart(ctx: Context) -> list[Reply]:
    return await start_application(ctx, restart=True)


@routes.menu_action("resume")
async def _resume(ctx: Context) -> list[Reply]:
    return resume(ctx)


@routes.command("unsubscribe", bare=True)
@routes.menu_action("unsubscribe")
async def _unsubscribe(ctx: Context) -> list[Reply]:
    return await set_subscription(ctx, False)


for _name, _handler, _applicant in (
    ("apply", start_application, True),
    ("cases", list_cases, True),
    ("menu", menu, True),
):
    routes.command(_name, applicant=_applicant, bare=True)(_handler)
    routes.menu_action(_name, applicant=_applicant)(_handler)
routes.command("contact", actor=True, bare=True)(contacts)  # an agent gets their teams only
routes.menu_action("contact", actor=True)(contacts)
