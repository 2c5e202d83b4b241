"""The queries behind a staff member's work list (/desk): open questions, active cases in
scope, open key-project problems; each narrowed by a search for a case number or company,
a keyset page at a time (the row after which a page starts), with its total counted in SQL.
Every page and count is one statement, however many rows there are; a count reads only the
table it counts unless a search needs the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, aliased, raiseload

from storage.cases import ACTIVE, Scope
from storage.cases import _within as within_scope
from storage.key_projects import ProblemStatus, handled_by
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


async def _count(session: AsyncSession, query: Select[Any]) -> int:
    found = await session.scalar(select(func.count()).select_from(query.subquery()))
    return int(found or 0)


Query = TypeVar("Query", bound=Select[Any])
# (a row's sort column, its id, the same two of the anchor: an alias of the same table)
Key = tuple[
    QueryableAttribute[Any],
    QueryableAttribute[int],
    QueryableAttribute[Any],
    QueryableAttribute[int],
]


def _page(query: Query, key: Key, after: int | None, limit: int) -> Query:
    """At most `limit` rows in (sort column, id) order, starting after the row `after`: the
    anchor's sort value is read in the same statement, so a page is one query."""
    column, ident, anchor_column, anchor_id = key
    if after is not None:
        since = select(anchor_column).where(anchor_id == after).scalar_subquery()
        query = query.where(or_(column > since, and_(column == since, ident > after)))
    return query.order_by(column, ident).limit(limit)


# -- questions: oldest first, (created_at, id) -----------------------------------------------

_QUESTION_ANCHOR = aliased(Question, name="anchor")


def _questions(staff_id: int | None, status: str | None) -> Select[tuple[Question]]:
    query = select(Question).where(Question.status.in_(OPEN_STATES))
    if status is not None:
        query = query.where(Question.status == status)
    if staff_id is not None:
        query = query.where(or_(Question.owner_id == staff_id, Question.assignee_id == staff_id))
    return query


async def open_questions(
    session: AsyncSession, staff_id: int | None, status: str | None, after: int | None, limit: int
) -> list[Question]:
    """Questions not yet closed that this person owns or was forwarded (all: None), oldest
    first, after the question `after`; at most `limit`."""
    anchor = _QUESTION_ANCHOR
    key = (Question.created_at, Question.id, anchor.created_at, anchor.id)
    query = _page(_questions(staff_id, status), key, after, limit)
    return list((await session.scalars(query)).all())


async def count_questions(session: AsyncSession, staff_id: int | None, status: str | None) -> int:
    return await _count(session, _questions(staff_id, status).with_only_columns(Question.id))


# -- cases: the earliest due first, no clock last, (due_at IS NULL, due_at, id) -------------

_CASE_ANCHOR = aliased(Case, name="anchor")


def _cases(scope: Scope, search: str, status: str | None) -> Select[tuple[Case]]:
    query = select(Case).where(Case.status.in_(ACTIVE), within_scope(scope))
    query = query.options(raiseload(Case.applicant))  # the desk shows none of it
    if status is not None:
        query = query.where(Case.status == status)
    if search:
        query = query.where(_case_match(search))
    return query


async def active_cases(
    session: AsyncSession,
    scope: Scope,
    search: str,
    status: str | None,
    after: int | None,
    limit: int,
) -> list[Case]:
    """Cases staff still have to move within `scope`, the earliest due first (those without
    a running clock last), after the case `after`; at most `limit`."""
    query = _cases(scope, search, status)
    if after is not None:
        anchor = _CASE_ANCHOR
        due = select(anchor.due_at).where(anchor.id == after).scalar_subquery()
        query = query.where(
            or_(
                and_(due.is_(None), Case.due_at.is_(None), Case.id > after),
                and_(
                    due.is_not(None),
                    or_(
                        Case.due_at.is_(None),
                        Case.due_at > due,
                        and_(Case.due_at == due, Case.id > after),
                    ),
                ),
            )
        )
    query = query.order_by(Case.due_at.is_(None), Case.due_at, Case.id).limit(limit)
    return list((await session.scalars(query)).all())


async def active_cases_counted(
    session: AsyncSession, scope: Scope, search: str, status: str | None, limit: int
) -> tuple[list[Case], int]:
    """The first page of `active_cases` and how many there are in all, in one statement:
    sorting by due time reads every case in scope anyway, so the total is a window over
    those rows rather than a second pass (a unit's scope costs most of the page)."""
    query = _cases(scope, search, status).add_columns(func.count().over())
    query = query.order_by(Case.due_at.is_(None), Case.due_at, Case.id).limit(limit)
    found = (await session.execute(query)).all()
    return [row[0] for row in found], (found[0][1] if found else 0)


async def count_cases(session: AsyncSession, scope: Scope, search: str, status: str | None) -> int:
    return await _count(session, _cases(scope, search, status).with_only_columns(Case.id))


# -- key-project problems: longest at their level first, (level_since, id) ------------------


@dataclass(frozen=True)
class OpenProblem:
    problem: Problem
    project: KeyProject
    case_number: str | None


_PROBLEM_ANCHOR = aliased(Problem, name="anchor")


def _problems(staff_id: int | None, search: str, level: int | None) -> Select[Any]:
    query = (
        select(Problem, KeyProject, Case.number)
        .join(KeyProject, KeyProject.id == Problem.key_project_id)
        .outerjoin(Case, Case.id == KeyProject.case_id)
    )
    return _problems_where(query, staff_id, search, level)


def _problems_where(
    query: Select[Any], staff_id: int | None, search: str, level: int | None
) -> Select[Any]:
    query = query.where(Problem.status == ProblemStatus.OPEN)
    if level is not None:
        query = query.where(Problem.level == level)
    if staff_id is not None:  # the ladder's rule in SQL: no look-up of a team per problem
        query = query.where(handled_by(staff_id))
    if search:
        pattern = _like(search)
        query = query.where(
            or_(
                KeyProject.company.ilike(pattern, escape="\\"),
                KeyProject.name.ilike(pattern, escape="\\"),
                Case.number.ilike(pattern, escape="\\"),
            )
        )
    return query


async def open_problems(
    session: AsyncSession,
    staff_id: int | None,
    search: str,
    level: int | None,
    after: int | None,
    limit: int,
) -> list[OpenProblem]:
    """Open problems at this person's level of the ladder (all: None), with the project and
    its case number, longest at their level first, after the problem `after`."""
    anchor = _PROBLEM_ANCHOR
    key = (Problem.level_since, Problem.id, anchor.level_since, anchor.id)
    query = _page(_problems(staff_id, search, level), key, after, limit)
    found = (await session.execute(query)).tuples()
    return [OpenProblem(problem, project, number) for problem, project, number in found]


async def count_problems(
    session: AsyncSession, staff_id: int | None, search: str, level: int | None
) -> int:
    if search:  # the search is on the project and its case
        return await _count(session, _problems(staff_id, search, level))
    query = _problems_where(select(func.count(Problem.id)), staff_id, search, level)
    return int(await session.scalar(query) or 0)
