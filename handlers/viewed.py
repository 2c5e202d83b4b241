"""谁查看过我的申请: an enterprise asks which units (and agencies) opened its case and when.
Units and times only, never individuals' names (PIPL asks who accessed; the unit answers)."""

from __future__ import annotations

from chat.events import Reply
from dialogs.texts import render
from handlers.context import Context
from handlers.routes import Routes
from storage import audit, cases

routes = Routes("viewed")
SHOWN = 30  # the newest views listed; older ones stay in the 操作日志


async def viewed(ctx: Context, argument: str) -> list[Reply]:
    """`/viewed BDB-…`: the staff views of one of the sender's own cases, newest first."""
    applicant = ctx.sender()
    number = argument.strip()[:40]
    if not number:
        return [Reply(render("viewed/usage.j2"))]
    async with ctx.services.db.sessions() as session:
        case = await cases.for_applicant(session, applicant.id, number) if applicant else None
        if case is None:
            return [Reply(render("cases/not_found.j2", number=number))]
        found = await audit.for_applicant_cases(session, [case.id], SHOWN)
    views = [
        {"at": record.at, "unit": agency or unit}
        for record, unit, agency in found
        if record.action == "case.view"
    ]
    return [Reply(render("viewed/list.j2", case=case, views=views))]


routes.command("viewed", applicant=True)(viewed)
