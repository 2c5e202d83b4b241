"""Cases (帮代办 applications): numbering, creation, the life cycle, applicant views."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass, fields

from sqlalchemy import ColumnElement, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import (
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
    utcnow,
)

S = CaseStatus
CHINA = dt.timezone(dt.timedelta(hours=8))
# 查询码 letters: no 0/O, 1/I/L, so it can be read off paper and typed on a phone.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6


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
    session: AsyncSession, applicant_id: int, data: Application, submission_key: str
) -> Case:
    """Insert the case, its items and its `submitted` event in the caller's transaction."""
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
        **data.columns(),
    )
    for item in sorted(catalog.values(), key=lambda i: (i.sort, i.id)):  # the catalog's order
        case.items.append(
            CaseItem(catalog_item_id=item.id, name=item.name, department_id=item.department_id)
        )
    if data.other_items:
        case.items.append(CaseItem(name=data.other_items))
    case.events.append(
        CaseEvent(actor_kind=ActorKind.APPLICANT, actor_id=applicant_id, to_status=S.SUBMITTED)
    )
    session.add(case)
    await session.flush()
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
    """Staff ids on the key-project team of this case (empty for a general project)."""
    query = (
        select(KeyProjectMember.staff_id)
        .join(KeyProject, KeyProject.id == KeyProjectMember.key_project_id)
        .where(KeyProject.case_id == case_id)
    )
    return frozenset((await session.scalars(query)).all())


async def for_applicant(session: AsyncSession, applicant_id: int, number: str) -> Case | None:
    """The case with this number if it belongs (or is bound) to this applicant, else None."""
    return await session.scalar(
        select(Case)
        .options(selectinload(Case.items), selectinload(Case.events))
        .where(Case.number == number.strip().upper(), _visible_to(applicant_id))
    )


async def list_for_applicant(
    session: AsyncSession, applicant_id: int, offset: int = 0, limit: int | None = None
) -> list[Case]:
    query = (
        select(Case)
        .where(_visible_to(applicant_id))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def by_query_code(session: AsyncSession, number: str, code: str) -> Case | None:
    """The case if `code` is its 查询码, else None (compared in constant time)."""
    case = await session.scalar(select(Case).where(Case.number == number.strip().upper()))
    if case is None or not case.query_code:
        return None
    if not hmac.compare_digest(case.query_code.encode(), code.strip().upper().encode()):
        return None
    return case


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


def _within(scope: Scope) -> ColumnElement[bool]:
    if scope.everything:
        return true()
    grants: list[ColumnElement[bool]] = []
    if scope.unit_id is not None:
        items = select(CaseItem.case_id).where(CaseItem.department_id == scope.unit_id)
        grants.append(Case.id.in_(items))
    if scope.member_id is not None:
        teams = (
            select(KeyProject.case_id)
            .join(KeyProjectMember, KeyProjectMember.key_project_id == KeyProject.id)
            .where(KeyProjectMember.staff_id == scope.member_id)
        )
        grants.append(Case.id.in_(teams))
    if scope.leader_id is not None:
        grants.append(Case.leader_id == scope.leader_id)
    if scope.key_projects:
        grants.append(Case.project_kind == ProjectKind.KEY)
    return or_(false(), *grants)


async def active(
    session: AsyncSession, scope: Scope, offset: int = 0, limit: int = 30
) -> tuple[list[Case], int]:
    """One page of the cases in `scope` staff still have to move, oldest change first,
    and how many there are in all."""
    where = (Case.status.in_(ACTIVE), _within(scope))
    total = await session.scalar(select(func.count(Case.id)).where(*where))
    query = (
        select(Case).where(*where).order_by(Case.updated_at, Case.id).offset(offset).limit(limit)
    )
    return list((await session.scalars(query)).all()), int(total or 0)


async def clocked(session: AsyncSession) -> list[Case]:
    """Cases whose working-day clock runs, or which wait for the applicant's 回访."""
    query = (
        select(Case)
        .options(selectinload(Case.events))
        .where(or_(Case.due_at.is_not(None), Case.status == S.DELIVERED))
        .order_by(Case.id)
    )
    return list((await session.scalars(query)).all())


async def rate(
    session: AsyncSession, case: Case, score: int, comment: str | None
) -> CaseRating | None:
    """Store the 回访 rating once per case; None if the case was rated already."""
    if await session.scalar(select(CaseRating).where(CaseRating.case_id == case.id)):
        return None
    rating = CaseRating(case_id=case.id, staff_id=case.handler_id, score=score, comment=comment)
    session.add(rating)
    return rating


async def rating_of(session: AsyncSession, case_id: int) -> CaseRating | None:
    return await session.scalar(select(CaseRating).where(CaseRating.case_id == case_id))


async def case_batch(session: AsyncSession, after_id: int, size: int) -> list[Case]:
    """Cases with their items in id order after `after_id` (keyset pages for exports)."""
    query = (
        select(Case)
        .options(selectinload(Case.items))
        .where(Case.id > after_id)
        .order_by(Case.id)
        .limit(size)
    )
    return list((await session.scalars(query)).unique().all())
