"""联席会议 in the chat: /meeting calls one (room, time, length), the caller picks the agenda
and the units on one screen and sends the invitations; the chiefs confirm who attends;
/minutes records the 会议纪要, then one decision per problem on the ladder."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import CallbackData, Prompt
from chat.events import Button, Reply
from dialogs.cleaning import clean
from dialogs.texts import label, render
from domain import meetings as life
from domain import notices
from domain.bookings import NotBookable
from domain.buttons import MeetingConfirm, MeetingRef
from domain.meetings import DECISIONS, Decision, Task
from domain.visits import parse_when
from handlers.context import Context
from handlers.routes import Routes, staff_of
from services.workdays import CHINA
from storage import bookings, meetings, roster
from storage.models import Case, Department, Meeting, MeetingStatus, Problem

log = logging.getLogger(__name__)
routes = Routes("meetings")
ATTENDEES_LIMIT = 200
MINUTES_LIMIT = 4000
TASK_LIMIT = 500


class MeetingToggle(MeetingRef, prefix="jm:t"):
    kind: str  # p problem, c case, u unit
    ref: int


class MeetingSend(MeetingRef, prefix="jm:send"): ...


class MeetingDrop(MeetingRef, prefix="jm:drop"): ...


class MeetingDecide(CallbackData, prefix="jm:d"):
    item_id: int
    outcome: str


class MeetingWho(Prompt, prefix="p:jmwho"):
    number: str


class MeetingMinutes(Prompt, prefix="p:jmmin"):
    number: str


class MeetingTask(Prompt, prefix="p:jmtask"):
    item_id: int


def _now(ctx: Context) -> dt.datetime:
    return ctx.services.clock()


def _refused() -> list[Reply]:
    return [Reply(render("meetings/not_allowed.j2"))]


@routes.command("meeting", staff=True)
async def call(ctx: Context, argument: str) -> list[Reply]:
    """`/meeting 2026-12-10 09:00 | 对接洽谈室1 | 2`: a draft holding the room's slots."""
    if not life.may_call(ctx.actor):
        return _refused()
    parts = [p.strip() for p in clean(argument, fold=True, single_line=True).split("|")]
    when = parse_when(parts[0]) if parts else None
    limit = ctx.services.meetings.max_slots
    slots = parts[2] if len(parts) == 3 else "1"
    if len(parts) not in (2, 3) or when is None or not slots.isdecimal():
        return [Reply(render("meetings/usage.j2", limit=limit))]
    if not 1 <= int(slots) <= limit:
        return [Reply(render("meetings/usage.j2", limit=limit))]
    staff, now = staff_of(ctx), _now(ctx)
    try:
        async with ctx.transaction(immediate=True) as session:
            room = next((r for r in await bookings.rooms(session) if r.name == parts[1]), None)
            if room is None:
                return [Reply(render("meetings/usage.j2", limit=limit))]
            value = f"{when.astimezone(CHINA):%Y-%m-%dT%H:%M}@{room.id}"
            meeting = await life.call(session, staff, value, int(slots), now, ctx.services.bookings)
            number = meeting.number
    except NotBookable as refused:
        return [Reply(render(refused.template))]
    except IntegrityError:
        return [Reply(render("meetings/room_taken.j2"))]
    return await screen(ctx, number)


async def screen(ctx: Context, number: str) -> list[Reply]:
    """The draft: agenda candidates and units to tick, then 发出通知."""
    limits, now = ctx.services.meetings, _now(ctx)
    async with ctx.services.db.sessions() as session:
        meeting = await meetings.by_number(session, number)
        if meeting is None:
            return _refused()
        problems = await meetings.candidate_problems(session, limits.agenda_choices)
        cases = await meetings.candidate_cases(session, now, limits.agenda_choices)
        units = await meetings.units(session)
        lines = await life.agenda(session, meeting)
    chosen_p = {i.problem_id for i in meeting.items}
    chosen_c = {i.case_id for i in meeting.items}
    chosen_u = {u.department_id for u in meeting.units}
    rows: list[list[Button]] = []
    for problem, project in problems:
        mark = "☑" if problem.id in chosen_p else "☐"
        text = f"{mark} L{problem.level} #{problem.id} {project.name[:8]}：{problem.text[:12]}"
        rows.append([MeetingToggle(number, "p", problem.id).button(text)])
    for case in cases:
        mark = "☑" if case.id in chosen_c else "☐"
        rows.append([MeetingToggle(number, "c", case.id).button(f"{mark} {case.number}")])
    unit_row = [
        MeetingToggle(number, "u", u.id).button(f"{'☑' if u.id in chosen_u else '☐'} {u.name}")
        for u in units
    ]
    rows += [unit_row[i : i + 2] for i in range(0, len(unit_row), 2)]
    rows.append(
        [
            MeetingSend(number).button(label("meetings", "send")),
            MeetingDrop(number).button(label("meetings", "drop")),
        ]
    )
    text = render("meetings/draft.j2", meeting=meeting, agenda=lines)
    return [Reply(text, rows)]


async def _draft(session: AsyncSession, ctx: Context, number: str) -> Meeting | None:
    meeting = await meetings.by_number(session, number, lock=True)
    if meeting is None or not life.may_call(ctx.actor):
        return None
    return meeting


@routes.button(MeetingToggle, staff=True)
async def toggle(ctx: Context, data: MeetingToggle) -> list[Reply]:
    if data.kind not in ("p", "c", "u"):
        return [Reply(render("dialog/expired.j2"))]
    async with ctx.transaction(immediate=True) as session:
        meeting = await _draft(session, ctx, data.number)
        if meeting is None:
            return _refused()
        if not await _exists(session, data.kind, data.ref):
            return [Reply(render("dialog/expired.j2"))]
        if not life.toggle(meeting, data.kind, data.ref):
            return [Reply(render("meetings/already_sent.j2", meeting=meeting))]
    return await screen(ctx, data.number)


async def _exists(session: AsyncSession, kind: str, ref: int) -> bool:
    """A ticked id is checked on the server: a real open problem, case or unit."""
    model = {"p": Problem, "c": Case, "u": Department}[kind]
    return await session.get(model, ref) is not None


@routes.button(MeetingSend, staff=True)
async def send(ctx: Context, data: MeetingSend) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        meeting = await _draft(session, ctx, data.number)
        if meeting is None:
            return _refused()
        if not meeting.units:
            return [Reply(render("meetings/no_units.j2"))]
        found = await life.send(session, meeting, _now(ctx))
        if found is None:
            return [Reply(render("meetings/already_sent.j2", meeting=meeting))]
        notices.enqueue(session, found)
    return [Reply(render("meetings/sent.j2", meeting=meeting, count=len(found)))]


@routes.button(MeetingDrop, staff=True)
async def drop(ctx: Context, data: MeetingDrop) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        meeting = await _draft(session, ctx, data.number)
        if meeting is None:
            return _refused()
        done = await life.cancel(session, meeting, _now(ctx))
    template = "meetings/dropped.j2" if done else "meetings/already_sent.j2"
    return [Reply(render(template, meeting=meeting))]


@routes.button(MeetingConfirm, staff=True)
async def ask_who(ctx: Context, data: MeetingConfirm) -> list[Reply]:
    staff = staff_of(ctx)
    async with ctx.services.db.sessions() as session:
        meeting = await meetings.by_number(session, data.number)
    if meeting is None or staff.role != "chief":
        return _refused()
    if staff.department_id not in {u.department_id for u in meeting.units}:
        return _refused()
    ctx.state["mode"] = MeetingWho(meeting.number).pack()
    return [Reply(render("meetings/ask_who.j2", meeting=meeting, limit=ATTENDEES_LIMIT))]


@routes.prompt(MeetingWho, staff=True)
async def confirm(ctx: Context, data: MeetingWho, text: str) -> list[Reply]:
    """The chief names who attends; the unit is confirmed once."""
    staff, who = staff_of(ctx), clean(text, single_line=True)
    if not who or len(who) > ATTENDEES_LIMIT:
        ctx.state["mode"] = data.pack()
        return [Reply(render("meetings/who_bad.j2", limit=ATTENDEES_LIMIT))]
    async with ctx.transaction(immediate=True) as session:
        meeting = await meetings.by_number(session, data.number, lock=True)
        if meeting is None or staff.role != "chief":
            return _refused()
        done = await life.confirm(session, meeting, staff, who, _now(ctx))
    template = "meetings/confirmed.j2" if done else "meetings/already_confirmed.j2"
    return [Reply(render(template, meeting=meeting, who=who))]


@routes.command("minutes", staff=True)
async def ask_minutes(ctx: Context, argument: str) -> list[Reply]:
    """`/minutes LX-000001`: the 会议纪要 is asked for."""
    if not life.may_call(ctx.actor):
        return _refused()
    async with ctx.services.db.sessions() as session:
        meeting = await meetings.by_number(session, argument.strip()[:24])
    if meeting is None or meeting.status != MeetingStatus.CALLED:
        return [Reply(render("meetings/minutes_not_now.j2"))]
    ctx.state["mode"] = MeetingMinutes(meeting.number).pack()
    return [Reply(render("meetings/ask_minutes.j2", meeting=meeting, limit=MINUTES_LIMIT))]


@routes.prompt(MeetingMinutes, staff=True)
async def minutes(ctx: Context, data: MeetingMinutes, text: str) -> list[Reply]:
    staff, body = staff_of(ctx), text.strip()
    if not body or len(body) > MINUTES_LIMIT:
        ctx.state["mode"] = data.pack()
        return [Reply(render("meetings/minutes_bad.j2", length=len(body), limit=MINUTES_LIMIT))]
    async with ctx.transaction(immediate=True) as session:
        meeting = await _draft(session, ctx, data.number)
        if meeting is None:
            return _refused()
        found = await life.record_minutes(session, meeting, staff, body, _now(ctx))
        if found is None:
            return [Reply(render("meetings/minutes_not_now.j2"))]
        notices.enqueue(session, found)
        lines = await life.agenda(session, meeting)
    rows = _decision_rows(meeting)
    return [Reply(render("meetings/minutes_saved.j2", meeting=meeting, agenda=lines), rows)]


def _decision_rows(meeting: Meeting) -> list[list[Button]]:
    """One row of decisions per problem of the agenda not decided yet."""
    return [
        [
            MeetingDecide(i.id, o).button(f"{label('decisions', o)} #{i.problem_id}")
            for o in DECISIONS
        ]
        for i in meeting.items
        if i.problem_id is not None and i.decision is None
    ]


@routes.button(MeetingDecide, staff=True)
async def decide(ctx: Context, data: MeetingDecide) -> list[Reply]:
    """A decision on one problem of the agenda; a task asks for what, who and by when."""
    if data.outcome not in DECISIONS:
        return [Reply(render("dialog/expired.j2"))]
    if data.outcome == Decision.TASK:
        if not life.may_call(ctx.actor):
            return _refused()
        ctx.state["mode"] = MeetingTask(data.item_id).pack()
        return [Reply(render("meetings/ask_task.j2", limit=TASK_LIMIT))]
    return await _decide(ctx, data.item_id, data.outcome, None)


def _parse_task(text: str) -> tuple[str, str, dt.date] | None:
    parts = [p.strip() for p in clean(text, fold=True, single_line=True).split("|")]
    if len(parts) != 3 or not 2 <= len(parts[0]) <= TASK_LIMIT or not parts[1]:
        return None
    try:
        return parts[0], parts[1], dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


@routes.prompt(MeetingTask, staff=True)
async def task(ctx: Context, data: MeetingTask, text: str) -> list[Reply]:
    parsed = _parse_task(text)
    if parsed is None:
        ctx.state["mode"] = data.pack()
        return [Reply(render("meetings/task_bad.j2", limit=TASK_LIMIT))]
    what, name, due_on = parsed
    async with ctx.services.db.sessions() as session:
        owner = await roster.staff_by_name(session, name)
    if owner is None:
        ctx.state["mode"] = data.pack()
        return [Reply(render("meetings/owner_unknown.j2", name=name))]
    return await _decide(ctx, data.item_id, Decision.TASK, Task(what, owner, due_on))


async def _decide(ctx: Context, item_id: int, outcome: str, task: Task | None) -> list[Reply]:
    staff = staff_of(ctx)
    if not life.may_call(ctx.actor):
        return _refused()
    async with ctx.transaction(immediate=True) as session:
        item = await meetings.item(session, item_id, lock=True)
        if item is None or item.problem_id is None:
            return _refused()
        meeting = await meetings.meeting_of(session, item)
        if meeting.status != MeetingStatus.HELD:
            return [Reply(render("meetings/minutes_not_now.j2"))]
        if item.decision is not None:
            return [Reply(render("meetings/already_decided.j2", item=item))]
        problem = await life.decide(session, item, staff, outcome, _now(ctx), task)
        if problem is None:
            return _refused()
        rows = _decision_rows(meeting)
    reply = render("meetings/decided.j2", item=item, problem=problem, outcome=outcome, task=task)
    return [Reply(reply, rows)]
