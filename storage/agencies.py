"""第三方专业机构: agencies, their agents and what they are assigned (cases, key projects)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, Select, and_, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Agency,
    AgencyAssignment,
    Department,
    KeyProject,
    OpinionDraft,
    Role,
    Staff,
    utcnow,
)

A = AgencyAssignment


def _covers(agent_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """Live assignments that reach this agent: their agency's, or theirs by name."""
    agency = select(Staff.agency_id).where(Staff.id == agent_id).scalar_subquery()
    return and_(
        A.ended_at.is_(None),
        A.agency_id == agency,
        or_(A.agent_id.is_(None), A.agent_id == agent_id),
    )


def assigned_cases(agent_id: int) -> Select[tuple[int | None]]:
    """Ids of the cases assigned to this agent, directly or through their key project."""
    direct = select(A.case_id).where(_covers(agent_id), A.case_id.is_not(None))
    through = (
        select(KeyProject.case_id)
        .join(A, A.key_project_id == KeyProject.id)
        .where(_covers(agent_id), KeyProject.case_id.is_not(None))
    )
    return select(union(direct, through).subquery().c[0])


async def agents_of_case(session: AsyncSession, case_id: int) -> frozenset[int]:
    """Agents reached by a live assignment of this case or of its key project."""
    on_case = select(A).where(A.ended_at.is_(None), A.case_id == case_id)
    project = select(KeyProject.id).where(KeyProject.case_id == case_id).scalar_subquery()
    on_project = select(A).where(A.ended_at.is_(None), A.key_project_id == project)
    found = [*await session.scalars(on_case), *await session.scalars(on_project)]
    return await _agents(session, found)


async def agents_of_project(session: AsyncSession, project_id: int) -> frozenset[int]:
    query = select(A).where(A.ended_at.is_(None), A.key_project_id == project_id)
    return await _agents(session, list(await session.scalars(query)))


async def _agents(session: AsyncSession, found: list[AgencyAssignment]) -> frozenset[int]:
    named = {a.agent_id for a in found if a.agent_id is not None}
    whole = {a.agency_id for a in found if a.agent_id is None}
    if whole:
        query = select(Staff.id).where(
            Staff.agency_id.in_(whole), Staff.role == Role.AGENT, Staff.active.is_(True)
        )
        named |= set((await session.scalars(query)).all())
    return frozenset(named)


def agent_project_ids(agent_id: int) -> Select[tuple[int | None]]:
    """The ids of the key projects assigned to this agent (their agency's or theirs)."""
    return select(A.key_project_id).where(_covers(agent_id), A.key_project_id.is_not(None))


async def projects_of_agent(session: AsyncSession, agent_id: int) -> list[KeyProject]:
    """Key projects assigned to this agent (their agency's or theirs), by id."""
    ids = agent_project_ids(agent_id)
    query = select(KeyProject).where(KeyProject.id.in_(ids)).order_by(KeyProject.id)
    return list((await session.scalars(query)).all())


async def by_name(session: AsyncSession, name: str) -> Agency | None:
    """The active agency by its name or code."""
    query = select(Agency).where(
        or_(Agency.name == name, Agency.code == name), Agency.active.is_(True)
    )
    return await session.scalar(query)


async def listing(session: AsyncSession) -> list[Agency]:
    query = select(Agency).where(Agency.active.is_(True)).order_by(Agency.id)
    return list((await session.scalars(query)).all())


async def agent(session: AsyncSession, agency_id: int, name: str) -> Staff | None:
    query = select(Staff).where(
        Staff.agency_id == agency_id, Staff.name == name, Staff.active.is_(True)
    )
    return await session.scalar(query)


async def agents(session: AsyncSession, agency_id: int) -> list[Staff]:
    query = select(Staff).where(
        Staff.agency_id == agency_id, Staff.role == Role.AGENT, Staff.active.is_(True)
    )
    return list((await session.scalars(query.order_by(Staff.id))).all())


def _target(case_id: int | None, project_id: int | None) -> ColumnElement[bool]:
    if case_id is not None:
        return A.case_id == case_id
    return A.key_project_id == project_id


async def live(
    session: AsyncSession, case_id: int | None = None, project_id: int | None = None
) -> list[AgencyAssignment]:
    """The live assignments of a case or of a key project, oldest first."""
    query = select(A).where(A.ended_at.is_(None), _target(case_id, project_id)).order_by(A.id)
    return list((await session.scalars(query)).all())


async def assign(
    session: AsyncSession,
    agency: Agency,
    agent: Staff | None,
    by: int,
    case_id: int | None = None,
    project_id: int | None = None,
) -> AgencyAssignment | None:
    """A new live assignment; None if the same one is live already."""
    for existing in await live(session, case_id, project_id):
        same_agent = existing.agent_id == (agent.id if agent else None)
        if existing.agency_id == agency.id and same_agent:
            return None
    row = A(
        agency_id=agency.id,
        agent_id=agent.id if agent else None,
        case_id=case_id,
        key_project_id=project_id,
        assigned_by=by,
    )
    session.add(row)
    await session.flush()
    return row


async def unassign(
    session: AsyncSession,
    agency: Agency,
    by: int,
    case_id: int | None = None,
    project_id: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """End every live assignment of this agency on the target at once; how many ended."""
    ended = 0
    for row in await live(session, case_id, project_id):
        if row.agency_id == agency.id:
            row.ended_at, row.ended_by = now or utcnow(), by
            ended += 1
    await session.flush()
    return ended


async def contracts_ending(session: AsyncSession, until: dt.date, limit: int) -> list[Agency]:
    """Active agencies whose contract ends by `until` and whose admins were not yet warned
    of that end date."""
    query = select(Agency).where(
        Agency.active.is_(True),
        Agency.contract_end <= until,
        or_(Agency.warned_for.is_(None), Agency.warned_for != Agency.contract_end),
    )
    return list((await session.scalars(query.order_by(Agency.id).limit(limit))).all())


async def contracts_ended(session: AsyncSession, before: dt.date, limit: int) -> list[Agency]:
    """Agencies whose contract ended before `before` and whose agents were not yet told."""
    query = select(Agency).where(
        Agency.contract_end < before,
        or_(Agency.ended_for.is_(None), Agency.ended_for != Agency.contract_end),
    )
    return list((await session.scalars(query.order_by(Agency.id).limit(limit))).all())


async def lead_admins(session: AsyncSession) -> list[Staff]:
    """Active administrators of the lead units: they are warned of contracts ending."""
    query = (
        select(Staff)
        .join(Department, Department.id == Staff.department_id)
        .where(Staff.role == Role.ADMIN, Staff.active.is_(True), Department.leading.is_(True))
        .order_by(Staff.id)
    )
    return list((await session.scalars(query)).all())


async def pending_drafts(session: AsyncSession, case_id: int) -> list[OpinionDraft]:
    """The case's 经办人意见 drafts not yet confirmed, oldest first."""
    query = select(OpinionDraft).where(
        OpinionDraft.case_id == case_id, OpinionDraft.confirmed_at.is_(None)
    )
    return list((await session.scalars(query.order_by(OpinionDraft.id))).all())


async def draft(session: AsyncSession, draft_id: int) -> OpinionDraft | None:
    """One draft, its row locked until the transaction ends."""
    return await session.get(OpinionDraft, draft_id, with_for_update=True)
