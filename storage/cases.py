"""Cases (帮代办 applications): numbering, creation, the life cycle, applicant views."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import unicodedata
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, selectinload

from storage import agencies, rollup
from storage.models import (
    ACTIVE_CASE_STATUSES,
    CLOCK_RUNNING,
    LEVEL_SCORES,
    ActorKind,
    Applicant,
    Case,
    CaseCounter,
    CaseEvent,
    CaseItem,
    CaseRating,
    CaseStatus,
    CaseViewer,
    CatalogItem,
    KeyProject,
    KeyProjectMember,
    ProjectKind,
    RatingLevel,
    Staff,
    utcnow,
)

S = CaseStatus
T = TypeVar("T", bound=tuple[Any, ...])
CHINA = dt.timezone(dt.timedelta(hours=8))
# 查询码 letters: no 0/O, 1/I/L, so it can be read off paper and typed on a phone.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8  # 31^8 ≈ 8.5e11 codes: see the odds in docs/security.md


def new_query_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


@dataclass(frozen=True)
class Application:
    """What the applicant filled in (the 申请表), validated by the dialog. Every field but
    `item_codes` is a column of Case by the same name, and the dialog's answers fill it by
    the same names (dialogs/application.py): adding a field is declaring it here, on Case
    and as a question of the form, plus a migration."""

    project_kind: str = ProjectKind.GENERAL
    company: str = ""
    credit_code: str | None = None
    project_name: str = ""
    project_code: str | None = None
    contact_name: str = ""
    contact_phone: str = ""
    project_summary: str = ""
    other_items: str | None = None
    item_codes: tuple[str, ...] = ()  # the catalog items asked for: Case.items, not a column

    def columns(self) -> dict[str, object]:
        """The fields that are Case's columns, by name."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name in Case.__table__.columns
        }


ApplicationData = Application  # the earlier name, still used by tests


async def next_number(session: AsyncSession, now: dt.datetime | None = None) -> str:
    """BDB-<year>-<six digits>, sequential per year; the row lock serialises writers."""
    year = (now or utcnow()).astimezone(CHINA).year
    bump = (
        update(CaseCounter)
        .where(CaseCounter.year == year)
        .values(last=CaseCounter.last + 1)
        .returning(CaseCounter.last)
    )
    last = await session.scalar(bump)
    if last is None:
        try:
            async with session.begin_nested():
                session.add(CaseCounter(year=year, last=1))
            last = 1
        except IntegrityError:  # another transaction created the year's row first
            last = await session.scalar(bump)
    return f"BDB-{year}-{last:06d}"


async def by_submission_key(session: AsyncSession, applicant_id: int, key: str) -> Case | None:
    """The case this applicant submitted from the draft `key` (keys are per applicant)."""
    query = select(Case).where(Case.applicant_id == applicant_id, Case.submission_key == key)
    return await session.scalar(query)


async def create(
    session: AsyncSession,
    applicant_id: int,
    data: Application,
    submission_key: str,
    now: dt.datetime | None = None,
) -> Case:
    """Insert the case, its items and its `submitted` event in the caller's transaction,
    and count it as received in the statistics' rollup."""
    now = now or utcnow()
    catalog = {
        item.code: item
        for item in await session.scalars(
            select(CatalogItem).where(CatalogItem.code.in_(data.item_codes))
        )
    }
    case = Case(
        number=await next_number(session),
        submission_key=submission_key,
        query_code=new_query_code(),
        applicant_id=applicant_id,
        status=S.SUBMITTED,
        created_at=now,
        updated_at=now,
        **data.columns(),
    )
    for item in sorted(catalog.values(), key=lambda i: (i.sort, i.id)):  # the catalog's order
        case.items.append(
            CaseItem(catalog_item_id=item.id, name=item.name, department_id=item.department_id)
        )
    if data.other_items:
        case.items.append(CaseItem(name=data.other_items))
    case.events.append(
        CaseEvent(
            actor_kind=ActorKind.APPLICANT, actor_id=applicant_id, to_status=S.SUBMITTED, at=now
        )
    )
    session.add(case)
    await session.flush()
    await rollup.count(session, case, rollup.kinds_of(case, S.SUBMITTED), now)
    return case


async def by_number(session: AsyncSession, number: str) -> Case | None:
    return await session.scalar(
        select(Case)
        .options(selectinload(Case.items), selectinload(Case.events))
        .where(Case.number == number)
    )


def _visible_to(applicant_id: int) -> ColumnElement[bool]:
    """The applicant's own cases and those bound to them with the 查询码."""
    bound = select(CaseViewer.case_id).where(CaseViewer.applicant_id == applicant_id)
    return or_(Case.applicant_id == applicant_id, Case.id.in_(bound))


async def lock(session: AsyncSession, number_or_id: str | int) -> Case | None:
    """The case with its items and events, its row locked until the transaction ends
    (SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers at BEGIN IMMEDIATE)."""
    key = (
        Case.id == number_or_id
        if isinstance(number_or_id, int)
        else Case.number == number_or_id.strip().upper()
    )
    # selectinload's queries run after the lock is held, so items and events are current.
    query = (
        select(Case)
        .options(selectinload(Case.items), selectinload(Case.events))
        .where(key)
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(query)


async def team_of(session: AsyncSession, case_id: int) -> frozenset[int]:
    """Staff ids on the key-project team of this case (empty for a general project) and the
    agents assigned to the case or its key project."""
    query = (
        select(KeyProjectMember.staff_id)
        .join(KeyProject, KeyProject.id == KeyProjectMember.key_project_id)
        .where(KeyProject.case_id == case_id)
    )
    team = frozenset((await session.scalars(query)).all())
    return team | await agencies.agents_of_case(session, case_id)


async def for_applicant(session: AsyncSession, applicant_id: int, number: str) -> Case | None:
    """The case with this number if it belongs (or is bound) to this applicant, else None."""
    return await session.scalar(
        select(Case)
        .options(selectinload(Case.items), selectinload(Case.events))
        .where(Case.number == number.strip().upper(), _visible_to(applicant_id))
    )


def literal_in(column: InstrumentedAttribute[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    """`column IN ('a', 'b')` with the values written into the SQL, as a partial index's
    predicate is (storage/models.py): the planner can then prove the index applies."""
    return column.in_([literal_column(f"'{value}'") for value in values])


@dataclass(frozen=True)
class Keyset:
    """Where a page starts: after the row `after` (forward) or before `before` (back)."""

    after: int | None = None
    before: int | None = None
    size: int = 10


_ANCHOR = aliased(Case, name="anchor")  # built once: an alias per call costs ≈ 1 ms


def _keyset_page(base: Select[T], key: str, page: Keyset, newest: bool) -> Select[T]:
    """`base` (over cases) limited to one page past the anchor row, ordered by (key, id) —
    newest first if `newest` — and reversed when going back; `page.size + 1` rows, so the
    caller knows whether the list goes on in the direction of travel."""
    column = getattr(Case, key)
    anchor_id = page.after if page.after is not None else page.before
    forward = page.before is None
    if anchor_id is not None:
        anchor = _ANCHOR
        anchor_key = select(getattr(anchor, key)).where(anchor.id == anchor_id).scalar_subquery()
        row, mark = tuple_(column, Case.id), tuple_(anchor_key, literal(anchor_id))
        base = base.where(row < mark if forward == newest else row > mark)
    descending = newest == forward
    order = (column.desc(), Case.id.desc()) if descending else (column, Case.id)
    return base.order_by(*order).limit(page.size + 1)


async def page_for_applicant(session: AsyncSession, applicant_id: int, page: Keyset) -> list[Case]:
    """One page of the cases this applicant may follow (own and bound), newest first; one
    row more than the page when the list goes on in the direction of travel. Each half is
    an index range (ix_cases_applicant_created; case_viewers by applicant)."""
    own = _keyset_page(
        select(Case.id).where(Case.applicant_id == applicant_id), "created_at", page, newest=True
    ).subquery()
    bound = _keyset_page(
        select(Case.id)
        .join(CaseViewer, CaseViewer.case_id == Case.id)
        .where(CaseViewer.applicant_id == applicant_id),
        "created_at",
        page,
        newest=True,
    ).subquery()
    both = union_all(select(own.c.id), select(bound.c.id)).subquery()
    newest_first = page.before is None
    order = (Case.created_at.desc(), Case.id.desc()) if newest_first else (Case.created_at, Case.id)
    query = select(Case).join(both, both.c.id == Case.id).order_by(*order).limit(page.size + 1)
    return list((await session.scalars(query)).all())


async def count_visible(session: AsyncSession, applicant_id: int) -> int:
    """How many cases this applicant may follow: their own and those bound with a 查询码."""
    own = select(func.count()).where(Case.applicant_id == applicant_id).scalar_subquery()
    bound = (
        select(func.count())
        .select_from(CaseViewer)
        .where(CaseViewer.applicant_id == applicant_id)
        .scalar_subquery()
    )
    return int(await session.scalar(select(own + bound)) or 0)


@dataclass(frozen=True)
class CodeGuard:
    """How many wrong 查询码 a case takes within `window` before it refuses every guess
    until `window` has passed since the last wrong one."""

    limit: int = 10
    window: dt.timedelta = dt.timedelta(hours=1)


@dataclass(frozen=True)
class CodeCheck:
    case: Case | None  # the case when the code is right
    locked: bool = False  # too many wrong codes: refused without comparing


def normalise_code(text: str) -> str:
    """Full-width letters and digits, spaces and case do not matter (read off paper, typed
    on a phone)."""
    return unicodedata.normalize("NFKC", text).strip().upper()


async def check_query_code(
    session: AsyncSession,
    number: str,
    code: str,
    guard: CodeGuard,
    now: dt.datetime | None = None,
) -> CodeCheck:
    """The case if `code` is its 查询码 (compared in constant time); wrong codes are counted on
    the case, whoever sends them, in the caller's transaction (the row stays locked)."""
    now = now or utcnow()
    query = select(Case).where(Case.number == normalise_code(number)).with_for_update(of=Case)
    case = await session.scalar(query)
    if case is None or not case.query_code:
        return CodeCheck(None)
    recent = case.code_failed_at is not None and now - case.code_failed_at < guard.window
    if recent and case.code_failures >= guard.limit:
        return CodeCheck(None, locked=True)
    if hmac.compare_digest(case.query_code.encode(), normalise_code(code).encode()):
        case.code_failures, case.code_failed_at = 0, None
        return CodeCheck(case)
    case.code_failures = case.code_failures + 1 if recent else 1
    case.code_failed_at = now
    return CodeCheck(None, locked=case.code_failures >= guard.limit)


async def viewers(session: AsyncSession, case_id: int) -> list[Applicant]:
    """Chats other than the owner bound to the case with its 查询码, reachable ones only."""
    query = (
        select(Applicant)
        .join(CaseViewer, CaseViewer.applicant_id == Applicant.id)
        .where(CaseViewer.case_id == case_id, Applicant.unreachable.is_(False))
        .order_by(CaseViewer.id)
    )
    return list((await session.scalars(query)).all())


async def bind_viewer(session: AsyncSession, case: Case, applicant_id: int) -> None:
    """Let another chat follow this case (idempotent; the owner needs no binding)."""
    if case.applicant_id == applicant_id:
        return
    exists = await session.scalar(
        select(CaseViewer.id).where(
            CaseViewer.case_id == case.id, CaseViewer.applicant_id == applicant_id
        )
    )
    if exists is None:
        session.add(CaseViewer(case_id=case.id, applicant_id=applicant_id))


async def count_for_applicant(
    session: AsyncSession, applicant_id: int, since: dt.datetime | None = None
) -> int:
    """How many cases this applicant submitted (since `since`, when given)."""
    query = select(func.count(Case.id)).where(Case.applicant_id == applicant_id)
    if since is not None:
        query = query.where(Case.created_at >= since)
    return int(await session.scalar(query) or 0)


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(Case.id))) or 0)


def record(
    case: Case,
    to: CaseStatus,
    actor_kind: ActorKind,
    actor_id: int | None,
    note: str | None = None,
    visible: bool = True,
) -> CaseEvent:
    """Set the new status and append its event (domain/cases.py checks the move first)."""
    current = CaseStatus(case.status)
    event = CaseEvent(
        actor_kind=actor_kind,
        actor_id=actor_id,
        from_status=current,
        to_status=to,
        note=note,
        visible_to_applicant=visible,
    )
    case.events.append(event)
    case.status = to
    case.updated_at = utcnow()
    return event


def visible_events(case: Case) -> list[CaseEvent]:
    return [e for e in case.events if e.visible_to_applicant]


ACTIVE = (S.SUBMITTED, S.ACCEPTED, S.IN_PROGRESS, S.NEEDS_SUPPLEMENT, S.COMPLETED, S.DELIVERED)


@dataclass(frozen=True)
class Scope:
    """Which cases a staff member may see; `everything` or any of the narrower grants."""

    everything: bool = False
    unit_id: int | None = None  # cases with an item of this unit
    member_id: int | None = None  # cases whose key project has this staff member on the team
    leader_id: int | None = None  # cases this leader is asked to instruct
    key_projects: bool = False  # every key-project case
    agent_id: int | None = None  # cases assigned to this agent's agency or to them


def _within(scope: Scope, probe: bool = False) -> ColumnElement[bool]:
    """The cases `scope` grants, as SQL over `Case`. With `probe`, the unit's and the team's
    grants are checked row by row through their indexes (a page that walks an index in order
    and stops when full), not by reading every case id of the grant first (a unit holds half
    of all cases, ≈ 57k items at 100k cases: 20–35 ms to hash for a page of ten)."""
    if scope.everything:
        return true()
    grants: list[ColumnElement[bool]] = []
    if scope.unit_id is not None:
        items = select(CaseItem.case_id).where(CaseItem.department_id == scope.unit_id)
        if probe:
            grants.append(_probe(items.where(CaseItem.case_id == Case.id)))
        else:
            grants.append(Case.id.in_(items))
    if scope.member_id is not None:
        teams = (
            select(KeyProject.case_id)
            .join(KeyProjectMember, KeyProjectMember.key_project_id == KeyProject.id)
            .where(KeyProjectMember.staff_id == scope.member_id)
        )
        if probe:
            grants.append(_probe(teams.where(KeyProject.case_id == Case.id)))
        else:
            grants.append(Case.id.in_(teams))
    if scope.leader_id is not None:
        grants.append(Case.leader_id == scope.leader_id)
    if scope.key_projects:
        grants.append(Case.project_kind == ProjectKind.KEY)
    if scope.agent_id is not None:
        grants.append(Case.id.in_(agencies.assigned_cases(scope.agent_id)))
    return or_(false(), *grants)


def _probe(query: Select[tuple[int | None]] | Select[tuple[int]]) -> ColumnElement[bool]:
    """EXISTS over `query` correlated with the outer case, run per row: PostgreSQL turns an
    EXISTS inside an OR into one hashed read of the whole subquery unless it has an OFFSET
    (it may then not drop the clause), and an index probe per row is what a page needs."""
    return query.correlate(Case).offset(0).exists()


def _active_in(scope: Scope, probe: bool = False) -> tuple[ColumnElement[bool], ...]:
    return (literal_in(Case.status, ACTIVE_CASE_STATUSES), _within(scope, probe))


async def active_page(session: AsyncSession, scope: Scope, page: Keyset) -> list[Case]:
    """One page of the cases in `scope` staff still have to move, oldest change first
    (ix_cases_active, its grants probed row by row until the page is full), one row more
    when the list goes on in the direction of travel."""
    base = select(Case).where(*_active_in(scope, probe=True))
    query = _keyset_page(base, "updated_at", page, newest=False)
    return list((await session.scalars(query)).all())


async def count_active(session: AsyncSession, scope: Scope) -> int:
    """How many cases in `scope` staff still have to move."""
    return int(await session.scalar(select(func.count(Case.id)).where(*_active_in(scope))) or 0)


# -- the scheduler: only what can be due now, in due order, a batch at a time -------------


async def due_for_reminder(
    session: AsyncSession, until: dt.datetime, after: tuple[dt.datetime, int] | None, limit: int
) -> list[Case]:
    """Cases whose clock runs out by `until` and whose handler has not been reminded, in
    due order after the cursor (ix_cases_due), locked so parallel ticks take each once."""
    query = (
        select(Case)
        .where(
            Case.reminded_at.is_(None),
            Case.due_at.is_not(None),
            Case.due_at <= until,
            literal_in(Case.status, CLOCK_RUNNING),
        )
        .order_by(Case.due_at, Case.id)
        .limit(limit)
        .with_for_update(of=Case, skip_locked=True)
    )
    if after is not None:
        query = query.where(tuple_(Case.due_at, Case.id) > after)
    return list((await session.scalars(query)).all())


async def waiting_for_follow_up(
    session: AsyncSession,
    before: dt.datetime | None,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> list[tuple[int, dt.datetime]]:
    """(id, asked at) of delivered cases whose 回访 was asked before `before`, oldest first
    after the cursor (ix_cases_follow_up)."""
    query = (
        select(Case.id, Case.follow_up_asked_at)
        .where(Case.status == S.DELIVERED, Case.follow_up_asked_at.is_not(None))
        .order_by(Case.follow_up_asked_at, Case.id)
        .limit(limit)
    )
    if before is not None:
        query = query.where(Case.follow_up_asked_at < before)
    if after is not None:
        query = query.where(tuple_(Case.follow_up_asked_at, Case.id) > after)
    rows = await session.execute(query)
    return [(case_id, asked) for case_id, asked in rows.tuples() if asked is not None]


async def rate(
    session: AsyncSession, case: Case, level: RatingLevel, channel: str | None
) -> CaseRating | None:
    """Store the case's one rating (一事一评); None if the case was rated already."""
    if await session.scalar(select(CaseRating.id).where(CaseRating.case_id == case.id)):
        return None
    rating = CaseRating(
        case_id=case.id,
        staff_id=case.handler_id,
        level=level,
        score=LEVEL_SCORES[level],
        points=[],
        channel=channel,
    )
    session.add(rating)
    await session.flush()
    return rating


async def rating_of(session: AsyncSession, case_id: int) -> CaseRating | None:
    return await session.scalar(select(CaseRating).where(CaseRating.case_id == case_id))


class CaseLine(NamedTuple):
    """One case as the case export writes it: plain columns, built positionally (a 100k-case
    export makes 100k of these, so no ORM objects and no keyword construction)."""

    number: str
    project_kind: str
    company: str
    project_name: str
    contact_name: str
    contact_phone: str
    status: str
    items: tuple[str, ...]
    handler: str | None
    handler_opinion: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


async def export_batch(
    session: AsyncSession, after_id: int, size: int
) -> tuple[int, list[CaseLine]]:
    """Cases in id order after `after_id` with their items and handler's name, in two
    statements (a keyset page of cases, then the items of that id range), read as core rows;
    returns the last id read (the next page's `after_id`) and the lines."""
    connection = await session.connection()
    query = (
        select(
            Case.id,
            Case.number,
            Case.project_kind,
            Case.company,
            Case.project_name,
            Case.contact_name,
            Case.contact_phone,
            Case.status,
            Staff.name,
            Case.handler_opinion,
            Case.created_at,
            Case.updated_at,
        )
        .outerjoin(Staff, Staff.id == Case.handler_id)
        .where(Case.id > after_id)
        .order_by(Case.id)
        .limit(size)
    )
    rows = (await connection.execute(query)).all()
    if not rows:
        return after_id, []
    first, last = rows[0][0], rows[-1][0]
    items: dict[int, list[str]] = {}
    found = await connection.execute(
        select(CaseItem.case_id, CaseItem.name)
        .where(CaseItem.case_id.between(first, last))
        .order_by(CaseItem.case_id, CaseItem.id)
    )
    for case_id, name in found:
        items.setdefault(case_id, []).append(name)
    none: tuple[str, ...] = ()
    lines = [
        CaseLine(r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(items.get(r[0], none)),
                 r[8], r[9], r[10], r[11])
        for r in rows
    ]  # fmt: skip
    return last, lines


async def ids_by_number(session: AsyncSession, number: str) -> tuple[int, int] | None:
    """(case id, applicant id) of the case with this number, or None."""
    row = (
        await session.execute(select(Case.id, Case.applicant_id).where(Case.number == number))
    ).first()
    return (row[0], row[1]) if row is not None else None
