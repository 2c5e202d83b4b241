"""上门服务 in the chat: the team proposes with /visit; the enterprise confirms or proposes
another time; the team accepts it; the units confirm; 已上门/未成行 with a record."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import Prompt
from chat.events import Reply
from dialogs.cleaning import clean
from dialogs.texts import render
from domain import notices
from domain import visits as life
from domain.buttons import VisitAccept, VisitAgree, VisitOther, VisitRef, VisitUnitConfirm
from domain.key_projects import on_team
from domain.visits import NotVisitable
from handlers.context import Context
from handlers.menu import with_menu
from handlers.routes import Routes, staff_of
from storage import key_projects, visits
from storage.models import Visit

log = logging.getLogger(__name__)
routes = Routes("visits")
ADDRESS_LIMIT = 200
RECORD_LIMIT = 500
UNITS_LIMIT = 6


class VisitMark(VisitRef, prefix="sv:mark"):
    outcome: str  # attended | absent


class VisitWhen(Prompt, prefix="p:svwhen"):
    number: str


class VisitRecord(Prompt, prefix="p:svrec"):
    number: str
    outcome: str


def _now(ctx: Context) -> dt.datetime:
    return ctx.services.clock()


def _parse(argument: str) -> tuple[str, str, str, list[str]] | None:
    parts = [p.strip() for p in clean(argument, fold=True, single_line=True).split("|")]
    if len(parts) not in (3, 4) or not parts[0].isdecimal() or len(parts[0]) > 9:
        return None
    units = parts[3].replace("、", " ").replace(",", " ").split() if len(parts) == 4 else []
    if not 2 <= len(parts[2]) <= ADDRESS_LIMIT or len(units) > UNITS_LIMIT:
        return None
    return parts[0], parts[1], parts[2], units


@routes.command("visit", staff=True)
async def propose(ctx: Context, argument: str) -> list[Reply]:
    """`/visit 项目编号 | 2026-12-09 10:00 | 地址 | 单位 单位`: the team proposes a visit."""
    staff, now, limits = staff_of(ctx), _now(ctx), ctx.services.visits
    parsed = _parse(argument)
    if parsed is None:
        return [Reply(render("visits/usage.j2", limit=ADDRESS_LIMIT))]
    project_ref, when_text, address, names = parsed
    when = life.parse_when(when_text)
    if when is None:
        return [Reply(render("visits/when_format.j2"))]
    try:
        async with ctx.transaction(immediate=True) as session:
            project = await key_projects.get(session, int(project_ref), lock=True)
            if project is None or not await on_team(session, staff, project.id):
                return [Reply(render("visits/not_found.j2"))]
            units = await visits.units_by_names(session, names)
            unknown = [n for n in names if n not in units]
            if unknown:
                return [Reply(render("visits/unknown_units.j2", names=unknown))]
            unit_ids = [units[n].id for n in names]
            visit, found = await life.propose(
                session, project, staff, when, address, unit_ids, now, limits
            )
            notices.enqueue(session, found)
    except NotVisitable as refused:
        return [Reply(render(refused.template, days=limits.days_ahead))]
    return [Reply(render("visits/proposed.j2", visit=visit))]


async def _enterprise_visit(
    ctx: Context, number: str, lock: bool, session: AsyncSession
) -> Visit | None:
    applicant = ctx.sender()
    visit = await visits.by_number(session, number, lock=lock)
    if visit is None or applicant is None or visit.applicant_id != applicant.id:
        return None
    return visit


@routes.button(VisitAgree, applicant=True)
async def agree(ctx: Context, data: VisitAgree) -> list[Reply]:
    """The enterprise confirms the time; a second press (another device) changes nothing."""
    async with ctx.transaction(immediate=True) as session:
        visit = await _enterprise_visit(ctx, data.number, True, session)
        if visit is None:
            return [with_menu("visits/not_found.j2")]
        found = await life.agree(session, visit, _now(ctx))
        if found is None:
            return [with_menu("visits/already.j2", visit=visit)]
        notices.enqueue(session, found)
    return [with_menu("visits/agreed.j2", visit=visit)]


@routes.button(VisitOther, applicant=True)
async def ask_other(ctx: Context, data: VisitOther) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        visit = await _enterprise_visit(ctx, data.number, False, session)
    if visit is None:
        return [with_menu("visits/not_found.j2")]
    ctx.state["mode"] = VisitWhen(visit.number).pack()
    return [Reply(render("visits/ask_when.j2", visit=visit))]


@routes.prompt(VisitWhen, applicant=True)
async def other_time(ctx: Context, data: VisitWhen, text: str) -> list[Reply]:
    """The other time the enterprise typed; a bad one is asked again, the step kept."""
    limits, now = ctx.services.visits, _now(ctx)
    when = life.parse_when(text)
    if when is None:
        ctx.state["mode"] = data.pack()
        return [Reply(render("visits/when_format.j2"))]
    try:
        async with ctx.transaction(immediate=True) as session:
            visit = await _enterprise_visit(ctx, data.number, True, session)
            if visit is None:
                return [with_menu("visits/not_found.j2")]
            found = await life.counter(session, visit, when, now, limits)
            if found is None:
                return [with_menu("visits/already.j2", visit=visit)]
            notices.enqueue(session, found)
    except NotVisitable as refused:
        ctx.state["mode"] = data.pack()
        return [Reply(render(refused.template, days=limits.days_ahead))]
    return [with_menu("visits/other_sent.j2", visit=visit)]


@routes.button(VisitAccept, staff=True)
async def accept(ctx: Context, data: VisitAccept) -> list[Reply]:
    staff = staff_of(ctx)
    async with ctx.transaction(immediate=True) as session:
        visit = await visits.by_number(session, data.number, lock=True)
        if visit is None or not await life.on_team(session, staff, visit):
            return [Reply(render("visits/not_found.j2"))]
        found = await life.accept(session, visit, _now(ctx))
        if found is None:
            return [Reply(render("visits/already.j2", visit=visit))]
        notices.enqueue(session, found)
    return [Reply(render("visits/accepted.j2", visit=visit))]


@routes.button(VisitUnitConfirm, staff=True)
async def unit_confirm(ctx: Context, data: VisitUnitConfirm) -> list[Reply]:
    staff = staff_of(ctx)
    async with ctx.transaction(immediate=True) as session:
        visit = await visits.by_number(session, data.number, lock=True)
        if visit is None or staff.department_id not in {u.department_id for u in visit.units}:
            return [Reply(render("visits/not_found.j2"))]
        done = await life.unit_confirm(session, visit, staff, _now(ctx))
    template = "visits/unit_confirmed.j2" if done else "visits/unit_already.j2"
    return [Reply(render(template, visit=visit))]


async def _may_mark(ctx: Context, session: AsyncSession, visit: Visit | None) -> bool:
    staff, actor = staff_of(ctx), ctx.actor
    if visit is None or actor is None:
        return False
    return life.goes(actor, visit) or await life.on_team(session, staff, visit)


@routes.button(VisitMark, staff=True)
async def ask_record(ctx: Context, data: VisitMark) -> list[Reply]:
    if data.outcome not in ("attended", "absent"):
        return [Reply(render("dialog/expired.j2"))]
    async with ctx.services.db.sessions() as session:
        visit = await visits.by_number(session, data.number)
        allowed = await _may_mark(ctx, session, visit)
    if visit is None or not allowed:
        return [Reply(render("visits/not_found.j2"))]
    ctx.state["mode"] = VisitRecord(visit.number, data.outcome).pack()
    return [Reply(render("visits/record_prompt.j2", visit=visit, limit=RECORD_LIMIT))]


@routes.prompt(VisitRecord, staff=True)
async def record(ctx: Context, data: VisitRecord, text: str) -> list[Reply]:
    """已上门/未成行 and the record, on the key project's timeline."""
    if len(text) > RECORD_LIMIT:
        ctx.state["mode"] = data.pack()
        return [Reply(render("visits/record_too_long.j2", length=len(text), limit=RECORD_LIMIT))]
    note = "" if text.strip() in ("无", "没有") else text.strip()
    async with ctx.transaction(immediate=True) as session:
        visit = await visits.by_number(session, data.number, lock=True)
        if visit is None or not await _may_mark(ctx, session, visit):
            return [Reply(render("visits/not_found.j2"))]
        await life.mark(session, visit, staff_of(ctx), data.outcome == "attended", note, _now(ctx))
    return [Reply(render("visits/marked.j2", visit=visit))]
