"""重点项目 rules: who acts on a project, the four-level problem ladder (L1 帮代办人员 →
L2 首席责任人 → L3 联席会议 → L4 委领导专题会议) and its periodic jobs: problems left at a level
go one level up, and the team is reminded of each 回访 due date."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.texts import label, render
from domain.buttons import ContactChoose, ProblemSolve, ProblemUp, ProjectView
from domain.policy import in_contract, is_admin
from domain.reminders import Services
from services import notify
from services.workdays import add_workdays, started_before, workdays_between
from storage import agencies, key_projects
from storage.key_projects import TOP_LEVEL
from storage.models import KeyProject, Problem, Role, Staff

log = logging.getLogger(__name__)
JOB_BATCH = 200  # problems or projects a periodic job takes on per tick


@dataclass(frozen=True)
class KeyProjectLimits:
    problem_workdays: int = 3  # at one level of the ladder before it goes one level up
    follow_up_workdays: int = 10  # first 回访 after the project is recorded


LIMITS = KeyProjectLimits()


async def on_team(session: AsyncSession, staff: Staff, project_id: int) -> bool:
    """Team members and administrators act on a project; agents only while assigned to it and
    under contract; nobody else."""
    if staff.role == Role.AGENT:
        return in_contract(staff) and staff.id in await agencies.agents_of_project(
            session, project_id
        )
    return is_admin(staff) or await key_projects.is_member(session, project_id, staff.id)


async def may_handle(session: AsyncSession, staff: Staff, problem: Problem) -> bool:
    """A problem is also handled by everyone it has been put before on the ladder."""
    if await on_team(session, staff, problem.key_project_id):
        return True
    return staff.id in await key_projects.reached(session, problem)


def notify_staff(
    session: AsyncSession,
    people: Iterable[Staff],
    text: str,
    key: str,
    buttons: list[list[Button]] | None = None,
    skip: int | None = None,
) -> list[Staff]:
    """Queue `text` for each reachable person (except `skip`); returns who was queued."""
    queued = [p for p in people if p.id != skip and p.chats()]
    for person in queued:
        notify.to_staff(session, person, text, key, buttons)
    return queued


def problem_buttons(problem: Problem) -> list[list[Button]]:
    row = [ProblemSolve(problem.id).button(f"{label('key_projects', 'resolve')} #{problem.id}")]
    if problem.level < TOP_LEVEL:
        escalate = label("key_projects", "escalate")
        row.insert(0, ProblemUp(problem.id).button(f"{escalate} #{problem.id}"))
    return [row]


async def notify_new_project(
    session: AsyncSession, project: KeyProject, by: Staff | None = None
) -> None:
    """Tell the team they are on a new key project (call in the creating transaction)."""
    people = await key_projects.team(session, project.id)
    text = render("key_projects/joined_notice.j2", project=project, by=by)
    view_button = [[ProjectView(project.id).button(label("key_projects", "view"))]]
    notify_staff(
        session,
        people,
        text,
        f"key_project:{project.id}:joined",
        view_button,
        skip=by.id if by else None,
    )


async def escalate(
    session: AsyncSession,
    problem: Problem,
    now: dt.datetime,
    actor: Staff | None,
    days: int,
) -> list[Staff]:
    """One level up the ladder; the people of the new level are told once each."""
    project = await key_projects.get(session, problem.key_project_id)
    assert project is not None
    problem.level += 1
    problem.level_since = now
    people = await key_projects.level_people(session, project.id, problem.level)
    text = render(
        "key_projects/problem_escalated.j2",
        project=project,
        problem=problem,
        actor=actor,
        days=days,
    )
    key = f"problem:{problem.id}:level:{problem.level}"
    skip = actor.id if actor else None
    queued = notify_staff(session, people, text, key, problem_buttons(problem), skip=skip)
    log.info("problem escalated id=%s level=%s", problem.id, problem.level)
    return queued


async def escalate_problems(
    services: Services, now: dt.datetime, limits: KeyProjectLimits = LIMITS
) -> int:
    """Move each problem unresolved for `problem_workdays` at its level one level up;
    returns how many notices were queued."""
    sent = 0
    before = started_before(now, limits.problem_workdays)
    async with services.db.transaction() as session:
        for problem in await key_projects.open_problems(session, before, JOB_BATCH):
            if workdays_between(problem.level_since, now) < limits.problem_workdays:
                continue
            sent += len(await escalate(session, problem, now, None, limits.problem_workdays))
    return sent


async def remind_follow_ups(
    services: Services, now: dt.datetime, limits: KeyProjectLimits = LIMITS
) -> int:
    """定期回访: remind the team once per due date; projects without a date get one."""
    sent = 0
    async with services.db.transaction() as session:
        for project in await key_projects.unscheduled(session, JOB_BATCH):
            start = project.last_contact_at or project.created_at
            project.next_follow_up_at = add_workdays(start, limits.follow_up_workdays)
        await session.flush()
        for project in await key_projects.due_follow_ups(session, now, JOB_BATCH):
            assert project.next_follow_up_at is not None
            people = await key_projects.team(session, project.id)
            text = render("key_projects/follow_up_due.j2", project=project)
            rows = [
                [
                    ContactChoose(project.id).button(label("key_projects", "contact")),
                    ProjectView(project.id).button(label("key_projects", "view")),
                ]
            ]
            key = f"key_project:{project.id}:follow_up:{int(project.next_follow_up_at.timestamp())}"
            sent += len(notify_staff(session, people, text, key, rows))
            project.follow_up_reminded_at = now
            log.info("follow-up reminder project=%s", project.id)
    return sent
