"""差评 items: the rows, locked for a step, and what the scheduler may find due."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BadRating, BadRatingStatus, Case, CaseItem, CaseRating, Role, Staff
from storage.roster import reachable_staff

OPEN = (BadRatingStatus.VERIFYING, BadRatingStatus.FIXING, BadRatingStatus.REVIEWING)
VERIFY_MISSED, FIX_MISSED = 1, 2  # escalation_level once the ladder's next level was told


async def lock(session: AsyncSession, item_id: int) -> BadRating | None:
    """The item, its row locked until the transaction ends."""
    query = (
        select(BadRating)
        .where(BadRating.id == item_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return await session.scalar(query)


async def get(session: AsyncSession, item_id: int) -> BadRating | None:
    return await session.get(BadRating, item_id)


async def with_case(
    session: AsyncSession, item_id: int
) -> tuple[BadRating, Case, CaseRating] | None:
    """The item with its case and the rating that opened it."""
    query = (
        select(BadRating, Case, CaseRating)
        .join(Case, Case.id == BadRating.case_id)
        .join(CaseRating, CaseRating.id == BadRating.rating_id)
        .where(BadRating.id == item_id)
    )
    row = (await session.execute(query)).tuples().first()
    return None if row is None else (row[0], row[1], row[2])


async def for_rating(session: AsyncSession, rating_id: int) -> BadRating | None:
    return await session.scalar(select(BadRating).where(BadRating.rating_id == rating_id))


async def main_unit(session: AsyncSession, case_id: int) -> int | None:
    """The unit with the most approval items in the case (the first such item's on a tie)."""
    query = (
        select(CaseItem.department_id)
        .where(CaseItem.case_id == case_id, CaseItem.department_id.is_not(None))
        .group_by(CaseItem.department_id)
        .order_by(func.count().desc(), func.min(CaseItem.id))
        .limit(1)
    )
    return await session.scalar(query)


async def unit_people(session: AsyncSession, department_id: int | None) -> list[Staff]:
    """The reachable chief, specialists and window staff of a unit: the item's owners."""
    if department_id is None:
        return []
    query = (
        select(Staff)
        .where(
            Staff.department_id == department_id,
            Staff.role.in_([Role.CHIEF, Role.SPECIALIST, Role.WINDOW]),
            Staff.active.is_(True),
            reachable_staff(),
        )
        .order_by(Staff.id)
    )
    return list((await session.scalars(query)).all())


async def reviewers(session: AsyncSession, lead_unit_id: int | None) -> list[Staff]:
    """Who reviews (复核): the chief of 政务服务中心, and the administrators."""
    query = select(Staff).where(Staff.active.is_(True), reachable_staff()).order_by(Staff.id)
    chief = Staff.role == Role.CHIEF
    if lead_unit_id is not None:
        query = query.where(
            (Staff.role == Role.ADMIN) | (chief & (Staff.department_id == lead_unit_id))
        )
    else:
        query = query.where(Staff.role == Role.ADMIN)
    return list((await session.scalars(query)).all())


async def open_for_unit(
    session: AsyncSession, department_id: int | None, limit: int
) -> list[BadRating]:
    """Open items of a unit (every unit: None), the earliest deadline first."""
    query = select(BadRating).where(BadRating.status.in_(OPEN))
    if department_id is not None:
        query = query.where(BadRating.department_id == department_id)
    query = query.order_by(BadRating.fix_due_at, BadRating.id).limit(limit)
    return list((await session.scalars(query)).all())


async def past_verify(session: AsyncSession, now: dt.datetime, limit: int) -> list[BadRating]:
    """Items still waiting for 回访核实 after its deadline, not yet escalated; locked."""
    query = (
        select(BadRating)
        .where(
            BadRating.status == BadRatingStatus.VERIFYING,
            BadRating.verify_due_at <= now,
            BadRating.escalation_level < VERIFY_MISSED,
        )
        .order_by(BadRating.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def past_fix(session: AsyncSession, now: dt.datetime, limit: int) -> list[BadRating]:
    """Items without 反馈 after its deadline, not yet escalated that far; locked."""
    query = (
        select(BadRating)
        .where(
            BadRating.status.in_([BadRatingStatus.VERIFYING, BadRatingStatus.FIXING]),
            BadRating.fix_due_at <= now,
            BadRating.escalation_level < FIX_MISSED,
        )
        .order_by(BadRating.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def fix_due_soon(session: AsyncSession, until: dt.datetime, limit: int) -> list[BadRating]:
    """Items without 反馈 whose deadline falls before `until`, owners not yet reminded."""
    query = (
        select(BadRating)
        .where(
            BadRating.status.in_([BadRatingStatus.VERIFYING, BadRatingStatus.FIXING]),
            BadRating.fix_due_at <= until,
            BadRating.reminded_at.is_(None),
        )
        .order_by(BadRating.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())
