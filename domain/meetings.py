"""联席会议 (work plan 四(三)): the lead units (政务服务中心, 产业促进局: administrators and
chiefs) call the approval departments to 会诊 hard cases and key-project problems.

call (the room's slots held like bookings) → agenda and units chosen → send (each unit's
首席责任人 invited through the outbox) → the chiefs confirm who attends → reminders →
会议纪要 → a decision per problem, each an update on the ladder: resolved, a task handed out
(a new problem with an owner and a due date), or up to L4 委领导专题会议. Every verb locks the
meeting (or the agenda item) and checks its state, so each notice goes once."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.texts import label, render
from domain.bookings import (
    BookingLimits,
    NotBookable,
    check_slot,
    confirm_unit,
    note_on_case,
    send_reminders,
)
from domain.buttons import MeetingConfirm
from domain.key_projects import escalate, notify_staff
from domain.notices import Notice
from domain.policy import Actor
from domain.reminders import Services
from services.workdays import CHINA
from storage import bookings, key_projects, meetings
from storage.key_projects import JOINT_MEETING_UNITS, TOP_LEVEL, ProblemStatus
from storage.models import (
    ActorKind,
    Case,
    Meeting,
    MeetingItem,
    MeetingStatus,
    MeetingUnit,
    Problem,
    Role,
    Staff,
)

log = logging.getLogger(__name__)


class Decision:
    RESOLVED = "resolved"  # 已解决
    TASK = "task"  # 交办: a new problem with an owner and a due date
    LEVEL4 = "level4"  # 提交委领导专题会议


DECISIONS = (Decision.RESOLVED, Decision.TASK, Decision.LEVEL4)


@dataclass(frozen=True)
class MeetingLimits:
    max_slots: int = 4  # the longest meeting, in room slots
    agenda_choices: int = 10  # candidates offered per kind


def may_call(actor: Actor | None) -> bool:
    """Administrators and the chiefs of the two lead units call and run 联席会议."""
    if actor is None or actor.kind != ActorKind.STAFF:
        return False
    return actor.role == Role.ADMIN or (
        actor.role == Role.CHIEF and actor.unit_code in JOINT_MEETING_UNITS
    )


async def call(
    session: AsyncSession,
    staff: Staff,
    value: str,
    slots: int,
    now: dt.datetime,
    limits: BookingLimits,
) -> Meeting:
    """A draft meeting holding `slots` consecutive slots of a room from `value` (a slot
    value: local start @ room); IntegrityError when one is held, NotBookable if not slots."""
    first = await check_slot(session, value, now, limits)
    starts = [(first.starts_at, first.ends_at)]
    room = await bookings.room(session, first.room_id)
    assert room is not None
    length = first.ends_at - first.starts_at
    for _ in range(slots - 1):
        start = starts[-1][1]
        try:
            nxt = await check_slot(
                session, f"{start.astimezone(CHINA):%Y-%m-%dT%H:%M}@{room.id}", now, limits
            )
        except NotBookable:
            raise NotBookable("meetings/slots_bad.j2") from None
        if nxt.ends_at - nxt.starts_at != length:
            raise NotBookable("meetings/slots_bad.j2")
        starts.append((nxt.starts_at, nxt.ends_at))
    lead = await meetings.lead_unit_ids(session)
    meeting = await meetings.create(session, staff.id, room.id, starts, lead, now)
    log.info("meeting drafted number=%s by=%s", meeting.number, staff.id)
    return meeting


def toggle(meeting: Meeting, kind: str, ref: int) -> bool:
    """Add or take away an agenda item ("p" problem, "c" case) or a unit ("u"); drafts only."""
    if meeting.status != MeetingStatus.DRAFT:
        return False
    if kind == "u":
        unit = next((u for u in meeting.units if u.department_id == ref), None)
        if unit is not None:
            meeting.units.remove(unit)
        else:
            meeting.units.append(MeetingUnit(department_id=ref))
        return True
    column = "problem_id" if kind == "p" else "case_id"
    found = next((i for i in meeting.items if getattr(i, column) == ref), None)
    if found is not None:
        meeting.items.remove(found)
    else:
        meeting.items.append(MeetingItem(**{column: ref}))
    return True


async def agenda(session: AsyncSession, meeting: Meeting) -> list[str]:
    """The agenda as lines: each problem with its project and level, each case."""
    lines = []
    for item in meeting.items:
        if item.problem_id is not None:
            problem = await session.get(Problem, item.problem_id)
            if problem is not None:
                project = await key_projects.get(session, problem.key_project_id)
                name = project.name if project else ""
                lines.append(f"#{problem.id} L{problem.level} {name}：{problem.text[:60]}")
        elif item.case_id is not None:
            case = await session.get(Case, item.case_id)
            if case is not None:
                lines.append(f"{case.number} {case.project_name}（{case.company}）")
    return lines


async def send(session: AsyncSession, meeting: Meeting, now: dt.datetime) -> list[Notice] | None:
    """Invite the units: each chief once, with 确认参会. None when it was sent already."""
    if meeting.status != MeetingStatus.DRAFT:
        return None
    meeting.status, meeting.updated_at = MeetingStatus.CALLED, now
    await session.flush()
    lines = await agenda(session, meeting)
    text = render("meetings/invitation.j2", meeting=meeting, agenda=lines)
    buttons = [[MeetingConfirm(meeting.number).button(label("meetings", "confirm"))]]
    chiefs = await meetings.chiefs(session, [u.department_id for u in meeting.units])
    log.info("meeting called number=%s units=%s", meeting.number, len(meeting.units))
    return [Notice(c, text, f"meeting:{meeting.id}:invited", buttons) for c in chiefs]


async def cancel(session: AsyncSession, meeting: Meeting, now: dt.datetime) -> bool:
    """A draft is dropped and its room slots freed (a called meeting is not, here)."""
    if meeting.status != MeetingStatus.DRAFT:
        return False
    meeting.status, meeting.updated_at = MeetingStatus.CANCELLED, now
    await meetings.release_rooms(session, meeting.id)
    await session.flush()
    return True


async def confirm(
    session: AsyncSession, meeting: Meeting, staff: Staff, attendees: str, now: dt.datetime
) -> bool:
    """The unit's chief names who attends; False when the unit had confirmed already."""
    if meeting.status != MeetingStatus.CALLED:
        return False
    unit = confirm_unit(meeting.units, staff, now)
    if unit is None:
        return False
    unit.attendees = attendees
    await session.flush()
    return True


async def record_minutes(
    session: AsyncSession, meeting: Meeting, staff: Staff, text: str, now: dt.datetime
) -> list[Notice] | None:
    """The 会议纪要: kept, sent to the units' chiefs once, noted on each case on the agenda."""
    if meeting.status != MeetingStatus.CALLED:
        return None
    meeting.status, meeting.minutes = MeetingStatus.HELD, text
    meeting.minutes_by, meeting.minutes_at, meeting.updated_at = staff.id, now, now
    for item in meeting.items:
        if item.case_id is not None:
            note = render("meetings/case_note.j2", meeting=meeting, minutes=text)
            await note_on_case(session, item.case_id, staff, note)
    await session.flush()
    chiefs = await meetings.chiefs(session, [u.department_id for u in meeting.units])
    body = render("meetings/minutes_notice.j2", meeting=meeting)
    return [Notice(c, body, f"meeting:{meeting.id}:minutes") for c in chiefs if c.id != staff.id]


@dataclass(frozen=True)
class Task:
    text: str
    owner: Staff
    due_on: dt.date


async def decide(
    session: AsyncSession,
    item: MeetingItem,
    staff: Staff,
    outcome: str,
    now: dt.datetime,
    task: Task | None = None,
) -> Problem | None:
    """The meeting's decision on a problem, as an update on the ladder; the people concerned
    are told (domain/key_projects.py). Returns the problem (or the task's new problem)."""
    problem = await key_projects.problem(session, item.problem_id or 0, lock=True)
    if problem is None:
        return None
    item.decision, item.decided_by, item.decided_at = outcome, staff.id, now
    project = await key_projects.get(session, problem.key_project_id)
    assert project is not None
    if outcome == Decision.LEVEL4:
        if problem.status == ProblemStatus.OPEN and problem.level < TOP_LEVEL:
            problem.level = TOP_LEVEL - 1
            await escalate(session, problem, now, staff, 0)
        return problem
    problem.status, problem.resolved_at = ProblemStatus.RESOLVED, now
    people = await key_projects.level_people(session, project.id, 1)
    text = render("meetings/resolved_notice.j2", project=project, problem=problem, task=task)
    notify_staff(session, people, text, f"problem:{problem.id}:resolved", skip=staff.id)
    if outcome != Decision.TASK or task is None:
        return problem
    new = await key_projects.raise_problem(session, project, task.text, staff.id, now)
    new.owner_id, new.due_on = task.owner.id, task.due_on
    item.new_problem_id = new.id
    body = render("meetings/task_notice.j2", project=project, problem=new, owner=task.owner)
    notify_staff(session, [task.owner], body, f"problem:{new.id}:level:1")
    return new


async def _reminders(session: AsyncSession, meeting: Meeting, kind: str) -> list[Notice]:
    """The caller and the confirming chiefs, reminded once per start time."""
    ids = [meeting.called_by] + [
        u.confirmed_by for u in meeting.units if u.confirmed_by is not None
    ]
    people = await bookings.staff_by_ids(session, dict.fromkeys(ids))
    text = render("meetings/remind.j2", meeting=meeting, kind=kind)
    key = f"meeting:{meeting.id}:remind_{kind}:{meeting.starts_at:%Y%m%d%H%M}"
    return [Notice(p, text, key) for p in people]


async def remind_meetings(services: Services, now: dt.datetime) -> int:
    """Called meetings: the confirming chiefs and the caller, the working day before at 16:00
    and one hour before, each once."""
    return await send_reminders(services, now, meetings.reminder_candidates, _reminders)
