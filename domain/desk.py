"""A staff member's work list (/desk): what is theirs by the visibility policy, due first.

- questions: the open ones they own or were forwarded (administrators: all open ones);
  due one working day after they came in (the chief is told then, domain/reminders.py);
- cases: the active cases `policy.scope` lets them see; due at the case's working-day clock;
- key-project problems: the open ones at their level of the ladder (administrators: all);
  due `problem_workdays` working days after the problem reached its level (none at the top).
Overdue rows come first, then by due time; rows without a due time last.
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
from storage.key_projects import TOP_LEVEL
from storage.models import Role, utcnow

QUESTION_WORKDAYS = 1  # domain/reminders.py escalates to the chief after this
PROBLEM_WORKDAYS = 3  # handlers/key_projects.py moves a problem up the ladder after this
LIMIT = 200  # rows per kind: a desk is a work list, not an archive


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

    @classmethod
    def parse(cls, kind: str, status: str, search: str) -> Filters:
        return cls(
            Kind(kind) if kind in set(Kind) else None,
            status or None,
            " ".join(search.split())[:100],
        )


def may_export_cases(actor: Actor) -> bool:
    """The case list carries every case: for the roles that see every case."""
    return policy.scope(actor).everything


def may_export_ledger(actor: Actor) -> bool:
    return policy.can(actor, Right.EXPORT_LEDGER)


async def work_list(
    session: AsyncSession, actor: Actor, filters: Filters, now: dt.datetime | None = None
) -> list[Row]:
    """The rows this actor may see, filtered, overdue first."""
    now = now or utcnow()
    everyone = actor.role == Role.ADMIN
    rows: list[Row] = []
    wanted = filters.kind
    if wanted in (None, Kind.QUESTION) and not filters.search:  # questions have no number
        for question in await desk.open_questions(session, None if everyone else actor.id, LIMIT):
            due = add_workdays(question.created_at, QUESTION_WORKDAYS)
            rows.append(
                Row(
                    Kind.QUESTION,
                    f"#{question.id}",
                    question.text[:60],
                    None,
                    question.status,
                    due,
                    due <= now,
                    f"question:{question.id}",
                )
            )
    if wanted in (None, Kind.CASE):
        scope = policy.scope(actor)
        for case in await desk.active_cases(session, scope, filters.search, LIMIT):
            rows.append(
                Row(
                    Kind.CASE,
                    case.number,
                    case.project_name,
                    case.company,
                    case.status,
                    case.due_at,
                    case.due_at is not None and case.due_at <= now,
                    f"case:{case.number}",
                )
            )
    if wanted in (None, Kind.PROBLEM):
        found = await desk.open_problems(
            session, None if everyone else actor.id, filters.search, LIMIT
        )
        for problem, project, _number in found:
            until: dt.datetime | None = None
            if problem.level < TOP_LEVEL:
                until = add_workdays(problem.level_since, PROBLEM_WORKDAYS)
            rows.append(
                Row(
                    Kind.PROBLEM,
                    f"#{problem.id}",
                    f"{project.name}：{problem.text[:50]}",
                    project.company,
                    f"level_{problem.level}",
                    until,
                    until is not None and until <= now,
                    f"project:{project.id}",
                )
            )
    if filters.status:
        rows = [r for r in rows if r.status == filters.status]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (not r.overdue, r.due_at is None, r.due_at or far))
