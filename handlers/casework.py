"""Staff move cases along the life cycle from the chat; each step tells the applicant once."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from dialogs.fields import format_phone
from dialogs.texts import label, render
from handlers import notify
from handlers.context import Context
from handlers.events import Button, Reply
from handlers.workdays import add_workdays
from storage import cases, files, questions
from storage.cases import ForbiddenTransition
from storage.models import ActorKind, Case, CaseStatus, Role, Staff, utcnow
from storage.roster import LEAD_UNIT

log = logging.getLogger(__name__)
PREFIX = "w"
S = CaseStatus


@dataclass(frozen=True)
class CaseLimits:
    """Working days allowed per state; the clock stops while the applicant supplements."""

    submitted: int = 1
    accepted: int = 3
    in_progress: int = 20
    remind_before: dt.timedelta = dt.timedelta(days=1)
    follow_up_close_workdays: int = 5


LIMITS = CaseLimits()


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


def _button(key: str, action: str, number: str, *args: str) -> Button:
    return Button(label("buttons", key), ":".join((PREFIX, action, number, *args)))


def _is_window(staff: Staff) -> bool:
    """Window staff of 政务服务中心 (and admins) move the case as a whole."""
    return staff.role == Role.ADMIN or (
        staff.role in (Role.WINDOW, Role.CHIEF) and staff.department.code == LEAD_UNIT
    )


def start_clock(case: Case, now: dt.datetime, limits: CaseLimits = LIMITS) -> None:
    days = {
        S.SUBMITTED: limits.submitted,
        S.ACCEPTED: limits.accepted,
        S.IN_PROGRESS: limits.in_progress,
    }.get(CaseStatus(case.status))
    case.due_at = add_workdays(now, days) if days is not None else None
    case.reminded_at = None


# -- views ------------------------------------------------------------------------------


async def inbox(ctx: Context) -> list[Reply]:
    if ctx.staff is None:
        return _reply("staff/not_allowed.j2")
    async with ctx.services.db.sessions() as session:
        found = await cases.active(session)
    rows = [
        [Button(f"{c.number} {label('status', c.status)}", f"{PREFIX}:view:{c.number}")]
        for c in found
    ]
    return [Reply(render("casework/inbox.j2", cases=found), rows)]


def actions(case: Case, staff: Staff) -> list[list[Button]]:
    """The buttons this staff member may press on this case now."""
    n, status, rows = case.number, CaseStatus(case.status), []
    if _is_window(staff):
        by_status = {
            S.SUBMITTED: [_button("accept", "accept", n), _button("reject", "reject", n)],
            S.ACCEPTED: [_button("start", "start", n)],
            S.IN_PROGRESS: [_button("supplement", "supp", n), _button("complete", "complete", n)],
            S.NEEDS_SUPPLEMENT: [_button("resume", "resume", n)],
            S.COMPLETED: [_button("deliver", "deliver", n)],
            S.DELIVERED: [_button("close", "close", n)],
        }
        if by_status.get(status):
            rows.append(by_status[status])
    if status == S.IN_PROGRESS:
        for item in case.items:
            if item.status != "done" and _may_update_item(staff, case, item.department_id):
                next_key = "declared" if item.status == "pending" else "item_done"
                next_status = "declared" if item.status == "pending" else "done"
                button = _button(next_key, "item", n, str(item.id), next_status)
                rows.append([Button(f"{item.name}：{button.label}", button.data)])
    if staff.role in (Role.LEADER, Role.ADMIN) and status not in (S.CLOSED, S.WITHDRAWN):
        rows.append([_button("instruct", "instruct", n)])
    return rows


def _may_update_item(staff: Staff, case: Case, department_id: int | None) -> bool:
    return (
        staff.role == Role.ADMIN
        or staff.id == case.handler_id
        or (department_id is not None and staff.department_id == department_id)
    )


async def view(ctx: Context, staff: Staff, number: str) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        case = await cases.by_number(session, number)
        if case is None:
            return _reply("casework/not_found.j2")
        attached = await files.for_case(session, case.id)
        text = render(
            "casework/view.j2",
            case=case,
            phone=format_phone(case.contact_phone),
            due=case.due_at,
            files=[f for f in attached if f.kind != "form"],
        )
        return [Reply(text, actions(case, staff))]


# -- actions ----------------------------------------------------------------------------


async def button(ctx: Context, rest: str) -> list[Reply]:
    """`w:<action>:<number>[:…]`; every action re-checks role and state on the server."""
    staff = ctx.staff
    if staff is None:
        return _reply("staff/not_allowed.j2")
    action, _, argument = rest.partition(":")
    number, _, extra = argument.partition(":")
    if action == "view":
        return await view(ctx, staff, number)
    prompts = {
        "accept": "casework/prompt_accept.j2",
        "reject": "casework/prompt_reject.j2",
        "supp": "casework/prompt_supplement.j2",
        "deliver": "casework/prompt_delivery.j2",
        "instruct": "casework/prompt_instruction.j2",
    }
    if action in prompts:
        return await _ask_text(ctx, staff, action, number, prompts[action])
    if action in ("start", "resume", "complete", "close", "pickup"):
        return await move(ctx, staff, action, number, None)
    if action == "item":
        item_id, _, status = extra.partition(":")
        return await update_item(ctx, staff, number, item_id, status)
    return _reply("dialog/expired.j2")


async def _ask_text(
    ctx: Context, staff: Staff, action: str, number: str, template: str
) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        case = await cases.by_number(session, number)
    if case is None:
        return _reply("casework/not_found.j2")
    allowed = _is_window(staff) if action != "instruct" else staff.role in (Role.LEADER, Role.ADMIN)
    if not allowed:
        return _reply("staff/not_allowed.j2")
    ctx.state["mode"] = f"case_{action}:{number}"
    buttons = [[_button("pickup", "pickup", number)]] if action == "deliver" else []
    return [Reply(render(template, case=case), buttons)]


TARGET = {
    "accept": S.ACCEPTED,
    "reject": S.REJECTED,
    "start": S.IN_PROGRESS,
    "supp": S.NEEDS_SUPPLEMENT,
    "resume": S.IN_PROGRESS,
    "complete": S.COMPLETED,
    "deliver": S.DELIVERED,
    "pickup": S.DELIVERED,
    "close": S.CLOSED,
}


async def on_text(ctx: Context, mode: str, number: str, text: str) -> list[Reply]:
    """The text a staff member typed after pressing 受理 / 不予受理 / 要求补正 / 送达 / 批示."""
    staff = ctx.staff
    if staff is None:
        return _reply("staff/not_allowed.j2")
    action = mode.removeprefix("case_")
    if action == "instruct":
        return await instruct(ctx, staff, number, text)
    return await move(ctx, staff, action, number, text)


async def move(
    ctx: Context, staff: Staff, action: str, number: str, text: str | None
) -> list[Reply]:
    """One life-cycle step: transition, event, clock, applicant notice — in one transaction."""
    target = TARGET.get(action)
    if target is None or not _is_window(staff):
        return _reply("staff/not_allowed.j2")
    now = utcnow()
    async with ctx.services.db.transaction() as session:
        case = await cases.by_number(session, number)
        if case is None:
            return _reply("casework/not_found.j2")
        if target not in cases.TRANSITIONS[CaseStatus(case.status)]:
            return _reply("casework/not_allowed_now.j2", case=case)
        if action == "complete":
            open_items = [i.name for i in case.items if i.status != "done"]
            if open_items:
                return _reply("casework/items_open.j2", names=open_items)
        note, visible = _note(action, text)
        try:
            event = cases.transition(case, target, ActorKind.STAFF, staff.id, note, visible)
        except ForbiddenTransition:
            return _reply("casework/not_allowed_now.j2", case=case)
        await session.flush()
        if action == "accept":
            case.handler_opinion, case.handler_id = text, staff.id
        _clock_for(case, target, now)
        handler = await questions.staff(session, case.handler_id) or staff
        notice, buttons = _applicant_notice(case, action, text, handler)
        if notice:
            notify.to_applicant(
                session, case.applicant, notice, f"case:{case.number}:event:{event.id}", buttons
            )
    log.info("case moved number=%s to=%s by=%s", number, target, staff.id)
    return await _updated(ctx, staff, render("casework/updated.j2", case=case), number)


async def _updated(ctx: Context, staff: Staff, headline: str, number: str) -> list[Reply]:
    """Confirm the change, then show the case again with what can be done next."""
    (screen,) = await view(ctx, staff, number)
    return [Reply(f"{headline}\n\n{screen.text}", screen.buttons)]


def _note(action: str, text: str | None) -> tuple[str | None, bool]:
    """What the applicant's timeline shows; the 经办人意见 typed with 受理 stays out of it."""
    return (text if action in ("reject", "supp", "deliver") else None), True


def _clock_for(case: Case, target: CaseStatus, now: dt.datetime) -> None:
    if target == S.NEEDS_SUPPLEMENT and case.due_at is not None:
        case.paused_seconds = max(0, int((case.due_at - now).total_seconds()))
        case.due_at = None
    elif target == S.IN_PROGRESS and case.paused_seconds is not None:
        case.due_at = now + dt.timedelta(seconds=case.paused_seconds)  # the clock restarts
        case.paused_seconds = None
    else:
        start_clock(case, now)


def _applicant_notice(
    case: Case, action: str, text: str | None, handler: Staff
) -> tuple[str | None, list[list[Button]]]:
    n = case.number
    if action == "accept":
        return render("casework/notice_accepted.j2", case=case, handler=handler), []
    if action == "reject":
        return render("casework/notice_rejected.j2", case=case, reason=text), []
    if action == "start":
        return render("casework/notice_in_progress.j2", case=case), []
    if action == "supp":
        upload = [[Button(label("buttons", "upload"), f"u:start:{n}")]]
        return render("casework/notice_supplement.j2", case=case, missing=text), upload
    if action == "resume":
        return render("casework/notice_resumed.j2", case=case), []
    if action == "complete":
        return render("casework/notice_completed.j2", case=case), []
    if action in ("deliver", "pickup"):
        tracking = text if action == "deliver" else None
        delivered = render("casework/notice_delivered.j2", case=case, tracking=tracking)
        return delivered + "\n\n" + render("casework/followup_ask.j2", case=case), rating_buttons(n)
    return None, []


def rating_buttons(number: str) -> list[list[Button]]:
    unit = label("buttons", "score")
    return [[Button(f"{score}{unit}", f"r:{number}:{score}") for score in range(5, 0, -1)]]


async def update_item(
    ctx: Context, staff: Staff, number: str, item_id: str, status: str
) -> list[Reply]:
    if status not in ("declared", "done") or not item_id.isdigit():
        return _reply("dialog/expired.j2")
    async with ctx.services.db.transaction() as session:
        case = await cases.by_number(session, number)
        item = next((i for i in case.items if i.id == int(item_id)), None) if case else None
        if case is None or item is None:
            return _reply("casework/not_found.j2")
        if not _may_update_item(staff, case, item.department_id):
            return _reply("staff/not_allowed.j2")
        if case.status != S.IN_PROGRESS or item.status == status:
            return _reply("casework/not_allowed_now.j2", case=case)
        item.status = status
        case.updated_at = utcnow()
        notify.to_applicant(
            session,
            case.applicant,
            render("casework/notice_item.j2", case=case, item=item),
            f"case:{case.number}:item:{item.id}:{status}",
        )
    return await _updated(ctx, staff, render("casework/item_updated.j2", item=item), number)


async def instruct(ctx: Context, staff: Staff, number: str, text: str) -> list[Reply]:
    if staff.role not in (Role.LEADER, Role.ADMIN):
        return _reply("staff/not_allowed.j2")
    async with ctx.services.db.transaction() as session:
        case = await cases.by_number(session, number)
        if case is None:
            return _reply("casework/not_found.j2")
        case.leader_instruction = text
    return _reply("casework/instruction_saved.j2")
