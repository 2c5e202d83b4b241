"""重点项目: key projects, their teams, milestones, the problem ladder, and the ledger rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from storage.cases import Keyset
from storage.models import (
    Case,
    Department,
    KeyProject,
    KeyProjectMember,
    Milestone,
    Problem,
    Role,
    Staff,
)

INDUSTRY_PROMOTION = "industry_promotion"  # 产业促进局 names key projects
GOVERNMENT_SERVICES = "government_services"  # 政务服务中心 runs the window
JOINT_MEETING_UNITS = (INDUSTRY_PROMOTION, GOVERNMENT_SERVICES)  # 联席会议 and default team
TOP_LEVEL = 4  # 委领导专题会议


class Stage(StrEnum):
    NEGOTIATING = "negotiating"
    SIGNED = "signed"
    APPLIED = "applied"
    BUILDING = "building"
    DONE = "done"


class ProblemStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


# -- projects and teams -------------------------------------------------------------------


async def _unit_chiefs(session: AsyncSession, codes: Iterable[str]) -> list[Staff]:
    query = (
        select(Staff)
        .join(Department)
        .where(Department.code.in_(list(codes)), Staff.role == Role.CHIEF, Staff.active.is_(True))
        .order_by(Department.sort, Staff.id)
    )
    return list((await session.scalars(query)).unique().all())


async def create(
    session: AsyncSession,
    name: str,
    company: str,
    stage: Stage,
    created_by: int | None = None,
    case_id: int | None = None,
    extra_members: Iterable[int] = (),
) -> KeyProject:
    """A key project whose team is the two lead units' chiefs plus `extra_members`."""
    project = KeyProject(
        name=name, company=company, stage=stage, created_by=created_by, case_id=case_id
    )
    team = [s.id for s in await _unit_chiefs(session, JOINT_MEETING_UNITS)]
    for staff_id in [*team, *extra_members]:
        if staff_id not in {m.staff_id for m in project.members}:
            project.members.append(KeyProjectMember(staff_id=staff_id))
    session.add(project)
    await session.flush()
    return project


async def create_for_case(session: AsyncSession, case: Case) -> KeyProject:
    """The key-project record of a submitted key case (stage 已申请); once per case."""
    existing = await session.scalar(select(KeyProject).where(KeyProject.case_id == case.id))
    if existing is not None:
        return existing
    return await create(session, case.project_name, case.company, Stage.APPLIED, case_id=case.id)


async def get(session: AsyncSession, project_id: int, lock: bool = False) -> KeyProject | None:
    """A project with its members, milestones and problems; `lock` for changes."""
    query = (
        select(KeyProject)
        .options(
            selectinload(KeyProject.members),
            selectinload(KeyProject.milestones),
            selectinload(KeyProject.problems),
        )
        .where(KeyProject.id == project_id)
    )
    if lock:
        query = query.with_for_update(of=KeyProject)
    return await session.scalar(query)


async def team(session: AsyncSession, project_id: int) -> list[Staff]:
    """The promotion team (推进团队), in the order people joined."""
    query = (
        select(Staff)
        .join(KeyProjectMember, KeyProjectMember.staff_id == Staff.id)
        .where(KeyProjectMember.key_project_id == project_id)
        .order_by(KeyProjectMember.id)
    )
    return list((await session.scalars(query)).unique().all())


async def is_member(session: AsyncSession, project_id: int, staff_id: int) -> bool:
    found = await session.scalar(
        select(KeyProjectMember.id).where(
            KeyProjectMember.key_project_id == project_id, KeyProjectMember.staff_id == staff_id
        )
    )
    return found is not None


def _listing(
    member_id: int | None, only: Select[tuple[int | None]] | None = None
) -> Select[tuple[KeyProject]]:
    """Projects the staff member is on; every project when `member_id` is None (admins);
    `only`: the ids they may see instead of a team (an agent's assigned projects)."""
    query = select(KeyProject)
    if only is not None:
        return query.where(KeyProject.id.in_(only))
    if member_id is not None:
        query = query.join(KeyProjectMember).where(KeyProjectMember.staff_id == member_id)
    return query


async def listing_page(
    session: AsyncSession,
    member_id: int | None,
    page: Keyset,
    only: Select[tuple[int | None]] | None = None,
) -> list[KeyProject]:
    """One page of `listing` in id order, one row more when the list goes on in the direction
    of travel (reversed when going back): the page's rows, not the whole list."""
    query = _listing(member_id, only)
    if page.before is not None:
        query = query.where(KeyProject.id < page.before).order_by(KeyProject.id.desc())
    else:
        if page.after is not None:
            query = query.where(KeyProject.id > page.after)
        query = query.order_by(KeyProject.id)
    return list((await session.scalars(query.limit(page.size + 1))).all())


async def count_listing(
    session: AsyncSession, member_id: int | None, only: Select[tuple[int | None]] | None = None
) -> int:
    query = _listing(member_id, only).with_only_columns(func.count(KeyProject.id))
    return int(await session.scalar(query) or 0)


async def add_member(session: AsyncSession, project: KeyProject, staff_id: int) -> bool:
    """Add someone to the team; False when they are already on it."""
    if await is_member(session, project.id, staff_id):
        return False
    session.add(KeyProjectMember(key_project_id=project.id, staff_id=staff_id))
    await session.flush()
    return True


async def case_number(session: AsyncSession, case_id: int | None) -> str | None:
    if case_id is None:
        return None
    return await session.scalar(select(Case.number).where(Case.id == case_id))


# -- milestones and problems --------------------------------------------------------------


async def add_milestone(
    session: AsyncSession, project: KeyProject, title: str, due_on: dt.date | None
) -> Milestone:
    milestone = Milestone(key_project_id=project.id, title=title, due_on=due_on)
    session.add(milestone)
    await session.flush()
    return milestone


async def milestone(session: AsyncSession, milestone_id: int) -> Milestone | None:
    return await session.get(Milestone, milestone_id)


async def raise_problem(
    session: AsyncSession, project: KeyProject, text: str, staff_id: int, now: dt.datetime
) -> Problem:
    """A new problem starts at level 1, the team (帮代办人员)."""
    problem = Problem(
        key_project_id=project.id,
        text=text,
        level=1,
        status=ProblemStatus.OPEN,
        raised_by=staff_id,
        raised_at=now,
        level_since=now,
    )
    session.add(problem)
    await session.flush()
    return problem


async def problem(session: AsyncSession, problem_id: int, lock: bool = False) -> Problem | None:
    query = select(Problem).where(Problem.id == problem_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def open_problems(
    session: AsyncSession, before: dt.datetime | None = None, limit: int | None = None
) -> list[Problem]:
    """Open problems below the top level (at their level since before `before`, when
    given; ix_problems_open), locked so parallel ticks take each one once."""
    query = (
        select(Problem)
        .where(Problem.status == ProblemStatus.OPEN, Problem.level < TOP_LEVEL)
        .order_by(Problem.level_since, Problem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if before is not None:
        query = query.where(Problem.level_since < before)
    return list((await session.scalars(query)).all())


async def level_people(session: AsyncSession, project_id: int, level: int) -> list[Staff]:
    """Who handles a problem at a level of the ladder (active staff, each once)."""
    members = [s for s in await team(session, project_id) if s.active]
    if level <= 1:
        people = members
    elif level == 2:
        people = []
        for unit in dict.fromkeys(s.department_id for s in members):
            people += await _staff_where(
                session, Staff.department_id == unit, Staff.role == Role.CHIEF
            )
    elif level == 3:
        people = await _unit_chiefs(session, JOINT_MEETING_UNITS)
        people += await _staff_where(session, Staff.role == Role.ADMIN)
    else:
        people = await _staff_where(session, Staff.role == Role.LEADER)
    return list({s.id: s for s in people}.values())


def handled_by(staff_id: int) -> ColumnElement[bool]:
    """Whether the staff member handles a problem at its level of the ladder, as SQL over
    `Problem` (the rule of `level_people`, so a list checks it in its own statement)."""
    me = aliased(Staff, name="me")
    member = aliased(KeyProjectMember, name="member")
    mate = aliased(Staff, name="mate")
    # Each membership test is an index probe per problem (OFFSET 0 keeps PostgreSQL from
    # hashing every membership of every project first, as it does for an EXISTS in an OR).
    on_team = (
        select(member.id)
        .where(member.key_project_id == Problem.key_project_id, member.staff_id == me.id)
        .correlate_except(member)
        .offset(0)
    )
    unit_on_team = (
        select(member.id)
        .join(mate, mate.id == member.staff_id)
        .where(
            member.key_project_id == Problem.key_project_id,
            mate.active.is_(True),
            mate.department_id == me.department_id,
        )
        .correlate_except(member, mate)
        .offset(0)
    )
    lead_units = select(Department.id).where(Department.code.in_(JOINT_MEETING_UNITS))
    return (
        select(me.id)
        .where(
            me.id == staff_id,
            me.active.is_(True),
            or_(
                and_(Problem.level <= 1, on_team.exists()),
                and_(Problem.level == 2, me.role == Role.CHIEF, unit_on_team.exists()),
                and_(
                    Problem.level == 3,
                    or_(
                        me.role == Role.ADMIN,
                        and_(me.role == Role.CHIEF, me.department_id.in_(lead_units)),
                    ),
                ),
                and_(Problem.level >= TOP_LEVEL, me.role == Role.LEADER),
            ),
        )
        .correlate_except(me)
        .exists()
    )


async def _staff_where(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[Staff]:
    query = select(Staff).where(Staff.active.is_(True), *conditions).order_by(Staff.id)
    return list((await session.scalars(query)).unique().all())


async def reached(session: AsyncSession, problem: Problem) -> set[int]:
    """Everyone the problem has been put before so far (levels 1 … its current level)."""
    ids: set[int] = set()
    for level in range(1, problem.level + 1):
        ids |= {s.id for s in await level_people(session, problem.key_project_id, level)}
    return ids


# -- follow-ups ---------------------------------------------------------------------------


async def unscheduled(session: AsyncSession, limit: int | None = None) -> list[KeyProject]:
    """Projects that have no 回访 date yet."""
    query = (
        select(KeyProject)
        .where(KeyProject.next_follow_up_at.is_(None))
        .order_by(KeyProject.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def due_follow_ups(
    session: AsyncSession, now: dt.datetime, limit: int | None = None
) -> list[KeyProject]:
    """Projects whose 回访 date has passed and whose reminder for that date is not sent yet."""
    query = (
        select(KeyProject)
        .where(
            KeyProject.next_follow_up_at <= now,
            or_(
                KeyProject.follow_up_reminded_at.is_(None),
                KeyProject.follow_up_reminded_at < KeyProject.next_follow_up_at,
            ),
        )
        .order_by(KeyProject.next_follow_up_at, KeyProject.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


def record_contact(project: KeyProject, now: dt.datetime, next_follow_up: dt.datetime) -> None:
    project.last_contact_at = now
    project.next_follow_up_at = next_follow_up


# -- ledger (台账) -------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerLine:
    """One row of the 重点项目动态管理台账, as plain values."""

    id: int
    name: str
    company: str
    stage: str
    service_plan: str | None
    team: tuple[tuple[str, str], ...]  # (name, unit) in the order people joined
    open_by_level: dict[int, int]
    last_contact_at: dt.datetime | None
    next_follow_up_at: dt.datetime | None
    case_number: str | None


async def ledger_batch(
    session: AsyncSession, after_id: int, size: int
) -> tuple[int, list[LedgerLine]]:
    """Projects in id order after `after_id`, with their team and open problems counted by
    level in SQL, in three statements whatever the batch holds; returns the last id read
    (the next batch's `after_id`) and the lines."""
    connection = await session.connection()
    projects = (
        await connection.execute(
            select(
                KeyProject.id,
                KeyProject.name,
                KeyProject.company,
                KeyProject.stage,
                KeyProject.service_plan,
                KeyProject.last_contact_at,
                KeyProject.next_follow_up_at,
                Case.number,
            )
            .outerjoin(Case, Case.id == KeyProject.case_id)
            .where(KeyProject.id > after_id)
            .order_by(KeyProject.id)
            .limit(size)
        )
    ).all()
    if not projects:
        return after_id, []
    first, last = projects[0][0], projects[-1][0]
    teams: dict[int, list[tuple[str, str]]] = {}
    found = await connection.execute(
        select(KeyProjectMember.key_project_id, Staff.name, Department.name)
        .join(Staff, Staff.id == KeyProjectMember.staff_id)
        .join(Department, Department.id == Staff.department_id)
        .where(KeyProjectMember.key_project_id.between(first, last))
        .order_by(KeyProjectMember.key_project_id, KeyProjectMember.id)
    )
    for project_id, name, unit in found:
        teams.setdefault(project_id, []).append((name, unit))
    counts: dict[int, dict[int, int]] = {}
    found = await connection.execute(
        select(Problem.key_project_id, Problem.level, func.count())
        .where(
            Problem.status == ProblemStatus.OPEN,
            Problem.key_project_id.between(first, last),
        )
        .group_by(Problem.key_project_id, Problem.level)
    )
    for project_id, level, count in found:
        counts.setdefault(project_id, {})[level] = count
    lines = [
        LedgerLine(
            r[0], r[1], r[2], r[3], r[4], tuple(teams.get(r[0], ())),
            {level: counts.get(r[0], {}).get(level, 0) for level in range(1, TOP_LEVEL + 1)},
            r[5], r[6], r[7],
        )
        for r in projects
    ]  # fmt: skip
    return last, lines
