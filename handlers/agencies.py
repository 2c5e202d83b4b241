"""第三方专业机构 in the chat: lead-unit administrators list agencies and assign or unassign
one on a case or key project (`/agencies`, `/assign`, `/unassign`)."""

from __future__ import annotations

from chat.events import Reply
from dialogs.texts import render
from domain import agencies as assignments
from domain import audit, notices, policy
from domain.policy import Right
from handlers.context import Context
from handlers.routes import Routes
from storage import agencies

routes = Routes("agencies")
ARGUMENT_LIMIT = 200  # a case number, an agency's name and a person's name fit easily


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


async def listing(ctx: Context) -> list[Reply]:
    """`/agencies`: the agencies, their contracts and people (lead-unit administrators)."""
    if ctx.actor is None or not policy.can(ctx.actor, Right.ASSIGN_AGENCY):
        return _reply("staff/not_allowed.j2")
    async with ctx.services.db.sessions() as session:
        found = await agencies.listing(session)
        people = {a.id: await agencies.agents(session, a.id) for a in found}
    return _reply("agencies/list.j2", agencies=found, agents=people)


async def _change(ctx: Context, argument: str, end: bool) -> list[Reply]:
    usage = "agencies/unassign_usage.j2" if end else "agencies/assign_usage.j2"
    if ctx.actor is None or not policy.can(ctx.actor, Right.ASSIGN_AGENCY):
        return _reply("staff/not_allowed.j2")
    parts = argument[:ARGUMENT_LIMIT].split()
    if len(parts) not in ((2,) if end else (2, 3)):
        return _reply(usage)
    target, agency, *agent = parts
    try:
        async with ctx.transaction(immediate=True) as session:
            result = await assignments.change(
                session, ctx.actor, target, agency, agent[0] if agent else None, end=end
            )
            notices.enqueue(session, result.notices)
            audit.note(  # committed with the assignment
                ctx.extra,
                "agency.unassign" if end else "agency.assign",
                case_number=result.case.number if result.case else None,
                key_project_id=result.project.id if result.project else None,
                fields=("agency_id",),
            )
    except assignments.AssignRefused as refused:
        return _reply(refused.template, **refused.context)
    template = "agencies/unassigned.j2" if end else "agencies/assigned.j2"
    return _reply(
        template,
        agency=result.agency,
        agent=result.agent,
        what=result.label,
        changed=result.changed,
    )


async def assign(ctx: Context, argument: str) -> list[Reply]:
    """`/assign 编号 机构 [人员]`: the agency (or one of its people) works this case or project."""
    return await _change(ctx, argument, end=False)


async def unassign(ctx: Context, argument: str) -> list[Reply]:
    """`/unassign 编号 机构`: the agency's access to it ends at once."""
    return await _change(ctx, argument, end=True)


routes.command("agencies", actor=True, bare=True)(listing)
routes.command("assign", actor=True)(assign)
routes.command("unassign", actor=True)(unassign)
