"""The queries behind a staff member's work list (/desk): open questions, active cases in
scope, open key-project problems; each narrowed by a search for a case number or company."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.cases import ACTIVE, Scope
from storage.cases import _within as within_scope
from storage.key_projects import ProblemStatus, level_people
from storage.models import Case, KeyProject, Problem, Question
from storage.questions import OPEN_STATES


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _case_match(search: str) -> ColumnElement[bool]:
    pattern = _like(search)
    return or_(
        Case.number.ilike(pattern, escape="\\"),
        Case.company.ilike(pattern, escape="\\"),
    )


async def open_questions(session: AsyncSession, staff_id: int | None, limit: int) -> list[Question]:
    """Questions not yet closed that this person owns or was forwarded (all: None)."""
    query = select(Question).where(Question.status.in_(OPEN_STATES))
    if staff_id is not None:
        query = query.where(or_(Question.owner_id == staff_id, Question.assignee_id == staff_id))
    query = query.order_by(Question.created_at, Question.id).limit(limit)
    return list((await session.scalars(query)).all())


async def active_cases(session: AsyncSession, scope: Scope, search: str, limit: int) -> list[Case]:
    """Cases staff still have to move within `scope`, the earliest due first."""
    query = select(Case).where(Case.status.in_(ACTIVE), within_scope(scope))
    if search:
        query = query.where(_case_match(search))
    query = query.order_by(Case.due_at.is_(None), Case.due_at, Case.id).limit(limit)
    return list((await session.scalars(query)).all())


async def open_problems(
    session: AsyncSession, staff_id: int | None, search: str, limit: int
) -> list[tuple[Problem, KeyProject, str | None]]:
    """Open problems at this person's level of the ladder (all: None), with the project
    and its case number."""
    query = (
        select(Problem, KeyProject, Case.number)
        .join(KeyProject, KeyProject.id == Problem.key_project_id)
        .outerjoin(Case, Case.id == KeyProject.case_id)
        .where(Problem.status == ProblemStatus.OPEN)
        .order_by(Problem.level_since, Problem.id)
    )
    if search:
        pattern = _like(search)
        query = query.where(
            or_(
                KeyProject.company.ilike(pattern, escape="\\"),
                KeyProject.name.ilike(pattern, escape="\\"),
                Case.number.ilike(pattern, escape="\\"),
            )
        )
    found: list[tuple[Problem, KeyProject, str | None]] = []
    for problem, project, number in (await session.execute(query)).tuples():
        if staff_id is not None:
            people = await level_people(session, project.id, problem.level)
            if staff_id not in {p.id for p in people}:
                continue
        found.append((problem, project, number))
        if len(found) >= limit:
            break
    return found
