"""上门服务: visits of key projects' teams and the units that go; every visit query lives here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reminders
from storage.models import (
    Applicant,
    Case,
    Department,
    KeyProject,
    Visit,
    VisitStatus,
    VisitUnit,
)

LISTED = (
    VisitStatus.PROPOSED,
    VisitStatus.RESCHEDULING,
    VisitStatus.CONFIRMED,
    VisitStatus.ATTENDED,
    VisitStatus.ABSENT,
)


async def create(
    session: AsyncSession,
    project: KeyProject,
    proposed_by: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    address: str,
    applicant_id: int | None,
    unit_ids: Iterable[int],
    now: dt.datetime,
) -> Visit:
    visit = Visit(
        number=f"new-{uuid.uuid4().hex[:16]}",
        key_project_id=project.id,
        applicant_id=applicant_id,
        proposed_by=proposed_by,
        starts_at=starts_at,
        ends_at=ends_at,
        address=address,
        status=VisitStatus.PROPOSED,
        created_at=now,
        updated_at=now,
        units=[VisitUnit(department_id=d) for d in dict.fromkeys(unit_ids)],
    )
    session.add(visit)
    await session.flush()
    visit.number = f"SF-{visit.id:06d}"  # 上门服务 number, read out on the phone
    await session.flush()
    await session.refresh(visit, ["units", "key_project", "applicant"])
    return visit


async def by_number(session: AsyncSession, number: str, lock: bool = False) -> Visit | None:
    query = select(Visit).where(Visit.number == number.strip().upper())
    if lock:
        query = query.with_for_update(of=Visit).execution_options(populate_existing=True)
    return await session.scalar(query)


async def between(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    department_id: int | None = None,
    limit: int = 200,
) -> list[Visit]:
    """Visits (not cancelled) starting in [start, end); with a unit, those it goes on."""
    query = (
        select(Visit)
        .where(Visit.starts_at >= start, Visit.starts_at < end, Visit.status.in_(LISTED))
        .order_by(Visit.starts_at, Visit.id)
        .limit(limit)
    )
    if department_id is not None:
        goes = select(VisitUnit.visit_id).where(VisitUnit.department_id == department_id)
        query = query.where(Visit.id.in_(goes))
    return list((await session.scalars(query)).all())


async def reminder_candidates(
    session: AsyncSession, until: dt.datetime, now: dt.datetime, limit: int = 200
) -> list[Visit]:
    """Confirmed, not yet started, starting before `until`, with a reminder still unsent."""
    confirmed = (Visit.status == VisitStatus.CONFIRMED,)
    return await reminders.candidates(session, Visit, confirmed, until, now, limit, lock=True)


async def project_applicant(session: AsyncSession, project: KeyProject) -> Applicant | None:
    """The enterprise in the chat: the applicant of the case the key project came from."""
    if project.case_id is None:
        return None
    query = select(Applicant).join(Case, Case.applicant_id == Applicant.id)
    return await session.scalar(query.where(Case.id == project.case_id))


async def units_by_names(session: AsyncSession, names: Iterable[str]) -> dict[str, Department]:
    """Active units by their name or code, for the names typed."""
    wanted = [n for n in names if n]
    if not wanted:
        return {}
    query = select(Department).where(
        Department.active.is_(True), or_(Department.name.in_(wanted), Department.code.in_(wanted))
    )
    found = list((await session.scalars(query)).all())
    return {key: d for d in found for key in (d.name, d.code) if key in wanted}
