"""Staff move cases along the life cycle from the chat: resolve, call the domain, render."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar, Literal, cast, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import CallbackData, Prompt, variants
from chat.events import Button, Reply
from dialogs.fields import format_phone
from dialogs.texts import label, render
from domain import audit, notices, policy
from domain import cases as life
from domain.buttons import (
    CaseConfirm,
    CaseDraft,
    CaseInstruct,
    CaseRef,
    CaseReply,
    CaseUpload,
    CaseView,
)
from domain.cases import (
    LIMITS,
    CaseLimits,
    CaseNotFound,
    CaseVerb,
    Moved,
    NotNow,
    Snapshot,
    StaleAction,
)
from domain.policy import Actor, CaseTarget, NotAllowed, Right
from handlers.context import Context
from handlers.pages import Cursor, PageRef
from handlers.routes import Routes, staff_of
from storage import agencies, cases, files, roster
from storage.models import Case, OpinionDraft, Role, Staff

log = logging.getLogger(__name__)
S = life.S
__all__ = ["LIMITS", "CaseLimits", "inbox", "routes"]
routes = Routes("casework")
Action = Literal["accept", "reject", "supp", "deliver", "instruct"]  # PROMPTS


class CaseStep(CallbackData, prefix="w"):
    """A life-cycle step a staff member presses (受理, 办结 …); some ask for a text first."""

    verb: CaseVerb
    number: str

    def __post_init__(self) -> None:
        if self.verb not in life.STAFF_VERBS:
            raise ValueError(self.verb)


class CaseItemStep(CallbackData, prefix="w:item"):
    number: str
    item_id: str
    status: str


class CaseLeaders(CaseRef, prefix="w:leaders"): ...  # 请领导批示: choose the leader


class CaseAskLeader(CallbackData, prefix="w:askto"):
    number: str
    leader_id: int


class InboxPage(PageRef, prefix="w:inbox"): ...


class CaseNote(Prompt):
    """The text typed after 受理 / 不予受理 / 要求补正 / 送达 / 批示, kept as `case_<action>:N`."""

    number: str
    action: ClassVar[Action]


NOTES = variants(CaseNote, "action", {action: f"case_{action}" for action in get_args(Action)})


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


def _step(key: str, verb: CaseVerb, number: str) -> Button:
    return CaseStep(verb, number).button(label("buttons", key))


# -- views ------------------------------------------------------------------------------


@routes.on(InboxPage, actor=True)
async def inbox(ctx: Context, page_text: str = "0") -> list[Reply]:
    """`/inbox`: the active cases this staff member may see, a page at a time."""
    if ctx.actor is None or ctx.staff is None:
        return _reply("staff/not_allowed.j2")
    scope = policy.scope(ctx.actor)
    cursor = Cursor.parse(page_text)
    async with ctx.services.db.sessions() as session:
        total = await cases.count_active(session, scope)
        found = await cases.active_page(session, scope, cursor.keyset)
        if not found and cursor != Cursor():  # the page's anchor is gone: start over
            cursor = Cursor()
            found = await cases.active_page(session, scope, cursor.keyset)
    found, page, pager = cursor.window(found, lambda c: c.id, total, InboxPage)
    rows = [[CaseView(c.number).button(f"{c.number} {label('status', c.status)}")] for c in found]
    if pager:
        rows.append(pager)
    return [Reply(render("casework/inbox.j2", cases=found, page=page), rows)]


STAFF_BUTTONS = {  # verb → label key, in the order they are offered
    CaseVerb.ACCEPT: "accept",
    CaseVerb.REJECT: "reject",
    CaseVerb.START: "start",
    CaseVerb.SUPPLEMENT: "supplement",
    CaseVerb.COMPLETE: "complete",
    CaseVerb.RESUME: "resume",
    CaseVerb.DELIVER: "deliver",
    CaseVerb.CLOSE: "close",
}


WORK_BUTTONS = (  # what the case's workers add to it (handlers/agent_work.py)
    (Right.REPLY, CaseReply, "reply_enterprise"),
    (Right.UPLOAD, CaseUpload, "upload_materials"),
    (Right.DRAFT_OPINION, CaseDraft, "draft_opinion"),
)


def work_buttons(
    target: CaseTarget, actor: Actor, drafts: list[OpinionDraft]
) -> list[list[Button]]:
    """给企业留言, 上传材料, 起草经办人意见 where the policy allows; 确认意见草稿 per draft."""
    n, rows = target.case.number, []
    if target.case.status in life.INSTRUCTABLE:
        row = [
            kind(n).button(label("buttons", key))
            for right, kind, key in WORK_BUTTONS
            if policy.can(actor, right, target)
        ]
        rows += [row] if row else []
        if policy.can(actor, Right.CONFIRM_OPINION, target):
            text = label("buttons", "confirm_opinion")
            rows += [[CaseConfirm(n, d.id).button(f"{text} {i}")] for i, d in enumerate(drafts, 1)]
    return rows


def actions(target: CaseTarget, actor: Actor) -> list[list[Button]]:
    """The buttons this staff member may press on this case now."""
    case, rows = target.case, []
    n = case.number
    if policy.can(actor, Right.MOVE, target):
        row = [
            _step(key, verb, n)
            for verb, key in STAFF_BUTTONS.items()
            if life.allowed(case.status, verb) and not _hidden(case, verb)
        ]
        if row:
            rows.append(row)
    if case.status == S.IN_PROGRESS:
        for item in case.items:
            next_status = life.ITEM_NEXT.get(item.status)
            may = policy.can(actor, Right.UPDATE_ITEM, CaseTarget(case, target.team, item))
            if next_status and may:
                key = "declared" if next_status == "declared" else "item_done"
                step = CaseItemStep(n, str(item.id), next_status)
                rows.append([step.button(f"{item.name}：{label('buttons', key)}")])
    if case.status in life.INSTRUCTABLE:
        if policy.can(actor, Right.INSTRUCT, target):
            rows.append([CaseInstruct(n).button(label("buttons", "instruct"))])
        if policy.can(actor, Right.ASK_LEADER, target):
            rows.append([CaseLeaders(n).button(label("buttons", "ask_leader"))])
    return rows


def _hidden(case: Case, verb: CaseVerb) -> bool:
    """办结 straight from 已受理 is allowed but not offered: staff start the work first."""
    return verb == CaseVerb.COMPLETE and case.status == S.ACCEPTED


async def _target(ctx: Context, number: str) -> CaseTarget | None:
    async with ctx.services.db.sessions() as session:
        case = await cases.by_number(session, number)
        if case is None:
            return None
        return CaseTarget(case, await cases.team_of(session, case.id))


def _refusal(actor: Actor, right: Right, target: CaseTarget | None) -> list[Reply]:
    """未找到 or 无权限 (logged with ids by the policy), or nothing when allowed."""
    if target is None:
        return _reply("casework/not_found.j2")
    try:
        policy.check(actor, right, target)
    except NotAllowed as refused:
        return _reply("casework/not_found.j2" if refused.hidden else "staff/not_allowed.j2")
    return []


@routes.on(CaseView, staff=True)
async def view(ctx: Context, staff: Staff, number: str) -> list[Reply]:
    """The case screen: what this staff member may see of it, and may do with it."""
    actor = Actor.of_staff(staff)
    async with ctx.services.db.sessions() as session:
        case = await cases.by_number(session, number)
        if case is None:
            return _reply("casework/not_found.j2")
        target = CaseTarget(case, await cases.team_of(session, case.id))
        refused = _refusal(actor, Right.VIEW, target)
        if refused:
            return refused
        attached = await files.for_case(session, case.id)
        drafts = await agencies.pending_drafts(session, case.id)
        shows_instruction = policy.can(actor, Right.SEE_INSTRUCTION, target)
        shown = (*audit.CASE_SCREEN_FIELDS, "leader_instruction") if shows_instruction else ()
        audit.note(
            ctx.extra,
            "case.view",
            case_number=case.number,
            fields=shown or audit.CASE_SCREEN_FIELDS,
        )
        text = render(
            "casework/view.j2",
            case=case,
            phone=format_phone(case.contact_phone),
            due=case.due_at,
            files=[f for f in attached if f.kind != "form"],
            show_instruction=shows_instruction,
            drafts=drafts,
        )
        return [Reply(text, [*actions(target, actor), *work_buttons(target, actor, drafts)])]


# -- actions ----------------------------------------------------------------------------

PROMPTS = {
    CaseVerb.ACCEPT: "casework/prompt_accept.j2",
    CaseVerb.REJECT: "casework/prompt_reject.j2",
    CaseVerb.SUPPLEMENT: "casework/prompt_supplement.j2",
    CaseVerb.DELIVER: "casework/prompt_delivery.j2",
    "instruct": "casework/prompt_instruction.j2",
}


async def _ask_text(ctx: Context, staff: Staff, action: Action, number: str) -> list[Reply]:
    target = await _target(ctx, number)
    right = Right.INSTRUCT if action == "instruct" else Right.MOVE
    refused = _refusal(Actor.of_staff(staff), right, target)
    if refused or target is None:
        return refused
    ctx.state["mode"] = NOTES[action](number).pack()
    buttons = [[_step("pickup", CaseVerb.PICKUP, number)]] if action == CaseVerb.DELIVER else []
    return [Reply(render(PROMPTS[action], case=target.case), buttons)]


async def _perform(
    ctx: Context,
    staff: Staff,
    number: str,
    run: Callable[[AsyncSession, Actor], Awaitable[Moved]],
    action: str = "case.move",
    fields: tuple[str, ...] = ("status",),
) -> Moved | list[Reply]:
    """Run one domain operation as this staff member, in a serialised transaction with its
    notices and its 操作日志 record; a refusal becomes its message."""
    try:
        async with ctx.transaction(immediate=True) as session:
            moved = await run(session, Actor.of_staff(staff))
            notices.enqueue(session, moved.notices)
            audit.note(ctx.extra, action, case_number=number, fields=fields)  # committed with it
        return moved
    except CaseNotFound:
        return _reply("casework/not_found.j2")
    except NotAllowed as refused:
        return _reply("casework/not_found.j2" if refused.hidden else "staff/not_allowed.j2")
    except StaleAction as stale:
        log.info("stale case action number=%s staff=%s", number, staff.id)
        return await _stale(ctx, staff, stale.case)
    except NotNow as refused:
        return _reply(refused.template, case=refused.case, **refused.context)


async def _stale(ctx: Context, staff: Staff, case: Snapshot) -> list[Reply]:
    """该申请状态已变化: say so, and show the case as it is now."""
    headline = render("casework/stale.j2", case=case)
    return await _updated(ctx, staff, headline, case.number)


async def move(
    ctx: Context, staff: Staff, verb: CaseVerb, number: str, text: str | None
) -> list[Reply]:
    """One life-cycle step: transition, event, clock, applicant notice — in one transaction."""
    result = await _perform(
        ctx,
        staff,
        number,
        lambda session, actor: life.move(
            session, number, verb, actor, text, links=ctx.services.rating_links
        ),
        f"case.{verb}",
        ("status", "handler_opinion") if verb == CaseVerb.ACCEPT else ("status",),
    )
    if isinstance(result, list):
        return result
    return await _updated(ctx, staff, render("casework/updated.j2", case=result.case), number)


async def _updated(ctx: Context, staff: Staff, headline: str, number: str) -> list[Reply]:
    """Confirm the change, then show the case again with what can be done next."""
    screen = await view(ctx, staff, number)
    return [Reply(headline), *screen]


@routes.on(CaseItemStep, staff=True)
async def update_item(
    ctx: Context, staff: Staff, number: str, item_id: str, status: str
) -> list[Reply]:
    if status not in ("declared", "done") or not item_id.isdigit():
        return _reply("dialog/expired.j2")
    updated: list[str] = []

    async def run(session: AsyncSession, actor: Actor) -> Moved:
        moved, item = await life.update_item(session, number, int(item_id), status, actor)
        updated.append(item.name)
        return moved

    result = await _perform(ctx, staff, number, run, "case.item", ("item_status",))
    if isinstance(result, list):
        return result
    headline = render("casework/item_updated.j2", item={"name": updated[0], "status": status})
    return await _updated(ctx, staff, headline, number)


async def instruct(ctx: Context, staff: Staff, number: str, text: str) -> list[Reply]:
    result = await _perform(
        ctx,
        staff,
        number,
        lambda session, actor: life.instruct(session, number, actor, text),
        "case.instruct",
        ("leader_instruction",),
    )
    return result if isinstance(result, list) else _reply("casework/instruction_saved.j2")


@routes.on(CaseLeaders, staff=True)
async def choose_leader(ctx: Context, staff: Staff, number: str) -> list[Reply]:
    """请领导批示: the window picks the leader to ask."""
    target = await _target(ctx, number)
    refused = _refusal(Actor.of_staff(staff), Right.ASK_LEADER, target)
    if refused or target is None:
        return refused
    async with ctx.services.db.sessions() as session:
        leaders = await roster.by_role(session, Role.LEADER)
    rows = [[CaseAskLeader(number, p.id).button(p.name)] for p in leaders]
    return [Reply(render("casework/choose_leader.j2", case=target.case), rows)]


@routes.on(CaseAskLeader, staff=True)
async def ask_leader(ctx: Context, staff: Staff, number: str, leader_id: int) -> list[Reply]:
    def run(session: AsyncSession, actor: Actor) -> Awaitable[Moved]:
        return life.ask_leader(session, number, actor, leader_id)

    result = await _perform(ctx, staff, number, run, "case.ask_leader", ("leader_id",))
    if isinstance(result, list):
        return result
    return await _updated(ctx, staff, render("casework/leader_asked.j2"), number)


# -- routes -------------------------------------------------------------------------------


@routes.button(CaseStep, staff=True)
async def _step_pressed(ctx: Context, data: CaseStep) -> list[Reply]:
    if data.verb in PROMPTS:
        return await _ask_text(ctx, staff_of(ctx), cast(Action, data.verb.value), data.number)
    return await move(ctx, staff_of(ctx), data.verb, data.number, None)


@routes.button(CaseInstruct, staff=True)
async def _instruct_pressed(ctx: Context, data: CaseInstruct) -> list[Reply]:
    return await _ask_text(ctx, staff_of(ctx), "instruct", data.number)


async def _note(ctx: Context, data: CaseNote, text: str) -> list[Reply]:
    """The text a staff member typed after pressing 受理 / 不予受理 / 要求补正 / 送达 / 批示."""
    if data.action == "instruct":
        return await instruct(ctx, staff_of(ctx), data.number, text)
    return await move(ctx, staff_of(ctx), CaseVerb(data.action), data.number, text)


for _kind in NOTES.values():
    routes.prompt(_kind, staff=True)(_note)

routes.command("inbox", staff=True, bare=True)(inbox)
