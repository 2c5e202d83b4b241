"""A staff member's work list (/desk): what is theirs by the visibility policy, due first.

- questions: the open ones they own or were forwarded (administrators: all open ones);
  due one working day after they came in (the chief is told then, domain/reminders.py);
- cases: the active cases `policy.scope` lets them see; due at the case's working-day clock;
- key-project problems: the open ones at their level of the ladder (administrators: all);
  due `problem_workdays` working days after the problem reached its level (none at the top).
Overdue rows come first, then by due time; rows without a due time last. A page holds
`size` rows of each kind; with a kind chosen, the next page starts after the last row shown
(keyset, in each kind's own order: questions and problems oldest first, cases by due time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from domain import policy
from domain.policy import Actor, Right
from services.workdays import add_workdays
from storage import desk
from storage.cases import ACTIVE
from storage.key_projects import TOP_LEVEL
from storage.models import Case, Question, Role, utcnow
from storage.questions import OPEN_STATES

QUESTION_WORKDAYS = 1  # domain/reminders.py escalates to the chief after this
PROBLEM_WORKDAYS = 3  # handlers/key_projects.py moves a problem up the ladder after this
PAGE_SIZE = 50  # rows per kind and page (Settings.desk_page_size)


class Kind(StrEnum):
    QUESTION = "question"
    CASE = "case"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Row:
    """One line of the work list; `target` is what the chat opens for it."""

    kind: Kind
    ref: str  # 咨询 #id, the case number, 问题 #id
    title: str
    company: str | None
    status: str
    due_at: dt.datetime | None
    overdue: bool
    target: str  # "question:12", "case:BDB-2026-000001", "project:3"


@dataclass(frozen=True)
class Filters:
    kind: Kind | None = None
    status: str | None = None
    search: str = ""
    after: int | None = None  # with a kind: the row its page starts after (keyset)

    @classmethod
    def parse(cls, kind: str, status: str, search: str, after: str = "") -> Filters:
        chosen = Kind(kind) if kind in set(Kind) else None
        start = int(after) if chosen and after.isdigit() and len(after) <= 12 else None
        return cls(chosen, status or None, " ".join(search.split())[:100], start)


@dataclass(frozen=True)
class Desk:
    """One page of the work list: the rows, overdue first; how many there are of each kind
    (counted in SQL); and, for each kind whose list goes on, the row its next page follows."""

    rows: list[Row]
    totals: dict[Kind, int]
    more: dict[Kind, int]


def may_export_cases(actor: Actor) -> bool:
    """The case list carries every case: for the roles that see every case."""
    return policy.scope(actor).everything


def may_export_ledger(actor: Actor) -> bool:
    return policy.can(actor, Right.EXPORT_LEDGER)


def _status_for(kind: Kind, status: str | None) -> tuple[bool, str | None]:
    """Whether a kind can have rows with the chosen status, and the status its query takes."""
    if status is None:
        return True, None
    if kind == Kind.QUESTION:
        return status in OPEN_STATES, status
    if kind == Kind.CASE:
        return status in ACTIVE, status
    level = status.removeprefix("level_")
    return status.startswith("level_") and level.isdigit() and len(level) == 1, status


async def work_list(
    session: AsyncSession,
    actor: Actor,
    filters: Filters,
    size: int = PAGE_SIZE,
    now: dt.datetime | None = None,
) -> Desk:
    """A page of the rows this actor may see, filtered, overdue first: `size` of each kind
    (of the chosen kind only, from `filters.after`, when one is chosen). A fixed number of
    statements, however many rows there are."""
    now = now or utcnow()
    everyone = actor.role == Role.ADMIN
    staff_id = None if everyone else actor.id
    rows: list[Row] = []
    totals: dict[Kind, int] = {}
    more: dict[Kind, int] = {}
    after = filters.after if filters.kind is not None else None

    def wanted(kind: Kind) -> tuple[bool, str | None]:
        if filters.kind not in (None, kind):
            return False, None
        if kind == Kind.QUESTION and filters.search:  # questions have no number
            return False, None
        return _status_for(kind, filters.status)

    def page(kind: Kind, found: list[Row], ids: list[int]) -> None:
        if len(found) > size:
            more[kind] = ids[size - 1]
        rows.extend(found[:size])

    shown, status = wanted(Kind.QUESTION)
    if shown:
        questions = await desk.open_questions(session, staff_id, status, after, size + 1)
        totals[Kind.QUESTION] = await desk.count_questions(session, staff_id, status)
        page(Kind.QUESTION, [_question_row(q, now) for q in questions], [q.id for q in questions])
    shown, status = wanted(Kind.CASE)
    if shown:
        scope = policy.scope(actor)
        if after is None:
            found, totals[Kind.CASE] = await desk.active_cases_counted(
                session, scope, filters.search, status, size + 1
            )
        else:
            found = await desk.active_cases(session, scope, filters.search, status, after, size + 1)
            totals[Kind.CASE] = await desk.count_cases(session, scope, filters.search, status)
        page(Kind.CASE, [_case_row(c, now) for c in found], [c.id for c in found])
    shown, status = wanted(Kind.PROBLEM)
    if shown:
        level = int(status.removeprefix("level_")) if status else None
        problems = await desk.open_problems(
            session, staff_id, filters.search, level, after, size + 1
        )
        totals[Kind.PROBLEM] = await desk.count_problems(session, staff_id, filters.search, level)
        page(
            Kind.PROBLEM,
            [_problem_row(p, now) for p in problems],
            [p.problem.id for p in problems],
        )
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rows.sort(key=lambda r: (not r.overdue, r.due_at is None, r.due_at or far))
    return Desk(rows, totals, more)


def _question_row(question: Question, now: dt.datetime) -> Row:
    due = add_workdays(question.created_at, QUESTION_WORKDAYS)
    return Row(
        Kind.QUESTION,
        f"#{question.id}",
        question.text[:60],
        None,
        question.status,
        due,
        due <= now,
        f"question:{question.id}",
    )


def _case_row(case: Case, now: dt.datetime) -> Row:
    return Row(
        Kind.CASE,
        case.number,
        case.project_name,
        case.company,
        case.status,
        case.due_at,
        case.due_at is not None and case.due_at <= now,
        f"case:{case.number}",
    )


def _problem_row(found: desk.OpenProblem, now: dt.datetime) -> Row:
    problem, project = found.problem, found.project
    until: dt.datetime | None = None
    if problem.level < TOP_LEVEL:
        until = add_workdays(problem.level_since, PROBLEM_WORKDAYS)
    return Row(
        Kind.PROBLEM,
        f"#{problem.id}",
        f"{project.name}：{problem.text[:50]}",
        project.company,
        f"level_{problem.level}",
        until,
        until is not None and until <= now,
        f"project:{project.id}",
    )
