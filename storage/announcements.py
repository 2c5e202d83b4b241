"""政策公告: announcements, their audiences (segments) and delivery counts."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Announcement,
    Applicant,
    Case,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    ProjectKind,
)

SEGMENTS = ("subscribers", "key_projects", "open_cases")
OPEN = (
    CaseStatus.SUBMITTED,
    CaseStatus.ACCEPTED,
    CaseStatus.IN_PROGRESS,
    CaseStatus.NEEDS_SUPPLEMENT,
    CaseStatus.COMPLETED,
    CaseStatus.DELIVERED,
)


async def audience(session: AsyncSession, segment: str, topics: list[str]) -> list[Applicant]:
    """Reachable applicants of a segment; subscribers filtered by topic when topics are given."""
    query = select(Applicant).where(Applicant.unreachable.is_(False)).order_by(Applicant.id)
    if segment == "subscribers":
        query = query.where(Applicant.subscribed.is_(True))
    elif segment == "key_projects":
        query = query.where(
            exists().where(Case.applicant_id == Applicant.id, Case.project_kind == ProjectKind.KEY)
        )
    elif segment == "open_cases":
        query = query.where(
            exists().where(Case.applicant_id == Applicant.id, Case.status.in_(OPEN))
        )
    else:
        return []
    people = list((await session.scalars(query)).all())
    if segment == "subscribers" and topics:
        # An empty topic list on a subscriber means "all topics".
        people = [p for p in people if not p.topics or set(p.topics) & set(topics)]
    return people


async def create(
    session: AsyncSession, title: str, body: str, segment: str, topics: list[str], staff_id: int
) -> Announcement:
    announcement = Announcement(
        title=title, body=body, segment=segment, topics=topics, created_by=staff_id
    )
    session.add(announcement)
    await session.flush()
    return announcement


async def recent(session: AsyncSession, limit: int = 5) -> list[Announcement]:
    return list((await session.scalars(_recent_query(limit))).all())


@functools.cache
def _recent_query(limit: int) -> Select[tuple[Announcement]]:
    """Built once per limit: SQLAlchemy reuses the statement's cache key (shown on /news)."""
    return select(Announcement).order_by(Announcement.id.desc()).limit(limit)


def recipient_key(announcement_id: int, applicant_id: int) -> str:
    return f"announcement:{announcement_id}:applicant:{applicant_id}"


def report_key(announcement_id: int) -> str:
    return f"announcement:{announcement_id}:report"


@dataclass(frozen=True)
class DeliveryCounts:
    sent: int
    failed: int
    pending: int

    @property
    def done(self) -> bool:
        return self.pending == 0


async def counts(session: AsyncSession, announcement_id: int) -> DeliveryCounts:
    return (await counts_of(session, [announcement_id]))[announcement_id]


async def counts_of(session: AsyncSession, ids: list[int]) -> dict[int, DeliveryCounts]:
    """Delivery counts of these announcements, in one statement (ix_outbox_announcement)."""
    rows = await session.execute(
        select(OutboxMessage.announcement_id, OutboxMessage.status, func.count())
        .where(OutboxMessage.announcement_id.in_(ids))
        .group_by(OutboxMessage.announcement_id, OutboxMessage.status)
    )
    by_status: dict[int, dict[str, int]] = {i: {} for i in ids}
    for announcement_id, status, n in rows.tuples():
        if announcement_id is not None:
            by_status[announcement_id][status] = int(n)
    return {
        i: DeliveryCounts(
            sent=found.get(OutboxStatus.SENT, 0),
            failed=found.get(OutboxStatus.DEAD, 0),
            pending=found.get(OutboxStatus.PENDING, 0),
        )
        for i, found in by_status.items()
    }


async def unreported(session: AsyncSession, after: int, limit: int) -> list[Announcement]:
    """Announcements whose delivery report is not written yet, in id order after `after`
    (ix_announcements_unreported)."""
    query = (
        select(Announcement)
        .where(Announcement.reported_at.is_(None), Announcement.id > after)
        .order_by(Announcement.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


async def set_topics(session: AsyncSession, applicant: Applicant, topics: list[str]) -> None:
    applicant.topics = topics
    applicant.subscribed = True
