"""The 操作日志 (audit log): append a record to its day's hash chain, search, verify, purge.

Records carry ids and field names, never the personal data itself. Appends are serialised
(a transaction-scoped advisory lock on PostgreSQL; SQLite's writer lock under
`transaction(immediate=True)`), so each day's records chain in id order:
hash = sha256(prev_hash + canonical record), prev_hash of a day's first record = sha256(day).
Nothing here updates a record; the database refuses UPDATE, and DELETE of records younger
than 180 days (migration 0400's triggers).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Select, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Agency, AuditRecord, Department, Staff, utcnow

CHINA = dt.timezone(dt.timedelta(hours=8))
LOCK_KEY = 0x0A0D17  # pg_advisory_xact_lock key of the audit chain
VERIFY_BATCH = 1000


@dataclass(frozen=True)
class Entry:
    """What one record says: who (ids), what, on which case or key project, from where."""

    action: str
    actor_kind: str
    actor_id: int | None = None
    role: str | None = None
    unit_id: int | None = None
    agency_id: int | None = None
    case_id: int | None = None
    case_number: str | None = None
    key_project_id: int | None = None
    applicant_id: int | None = None
    fields: tuple[str, ...] = ()
    channel: str | None = None
    client: str | None = None


def day_of(moment: dt.datetime) -> str:
    return moment.astimezone(CHINA).date().isoformat()


def genesis(day: str) -> str:
    return hashlib.sha256(f"audit:{day}".encode()).hexdigest()


def digest(record: AuditRecord) -> str:
    """The record's hash over every column but id and hash, chained to prev_hash."""
    values = [
        record.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        record.day,
        record.actor_kind,
        record.actor_id,
        record.role,
        record.unit_id,
        record.agency_id,
        record.action,
        record.case_id,
        record.case_number,
        record.key_project_id,
        record.applicant_id,
        list(record.fields or []),
        record.channel,
        record.client,
    ]
    canonical = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{record.prev_hash}{canonical}".encode()).hexdigest()


async def append(
    session: AsyncSession, entry: Entry, now: dt.datetime | None = None
) -> AuditRecord:
    """Add one record in the caller's transaction, chained to its day's latest record."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    at = now or utcnow()
    day = day_of(at)
    last = await session.scalar(
        select(AuditRecord.hash)
        .where(AuditRecord.day == day)
        .order_by(AuditRecord.id.desc())
        .limit(1)
    )
    record = AuditRecord(
        at=at,
        day=day,
        actor_kind=entry.actor_kind,
        actor_id=entry.actor_id,
        role=entry.role,
        unit_id=entry.unit_id,
        agency_id=entry.agency_id,
        action=entry.action[:60],
        case_id=entry.case_id,
        case_number=entry.case_number,
        key_project_id=entry.key_project_id,
        applicant_id=entry.applicant_id,
        fields=list(entry.fields),
        channel=entry.channel,
        client=(entry.client or None) and entry.client[:64],
        prev_hash=last or genesis(day),
    )
    record.hash = digest(record)
    session.add(record)
    await session.flush()
    return record


@dataclass(frozen=True)
class Filters:
    case_number: str | None = None
    person: str | None = None  # a staff member's name
    since: dt.date | None = None
    case_id: int | None = None


@dataclass(frozen=True)
class Line:
    """A record as the viewer and the export show it: with the person's and unit's names."""

    record: AuditRecord
    person: str | None
    unit: str | None


def _query(filters: Filters) -> Select[tuple[AuditRecord, str | None, str | None]]:
    query: Select[tuple[AuditRecord, str | None, str | None]] = (
        select(AuditRecord, Staff.name, Department.name)  # type: ignore[assignment]
        .outerjoin(Staff, Staff.id == AuditRecord.actor_id)
        .outerjoin(Department, Department.id == AuditRecord.unit_id)
    )
    if filters.case_number:
        query = query.where(AuditRecord.case_number == filters.case_number.strip().upper())
    if filters.case_id is not None:
        query = query.where(AuditRecord.case_id == filters.case_id)
    if filters.person:
        query = query.where(Staff.name == filters.person.strip())
    if filters.since is not None:
        query = query.where(AuditRecord.day >= filters.since.isoformat())
    return query


async def search(session: AsyncSession, filters: Filters, limit: int) -> list[Line]:
    """The newest `limit` records matching the filters, newest first."""
    query = _query(filters).order_by(AuditRecord.id.desc()).limit(limit)
    return [Line(r, p, u) for r, p, u in (await session.execute(query)).tuples()]


async def stream(session: AsyncSession, filters: Filters, batch: int = 1000) -> AsyncIterator[Line]:
    """Every matching record, oldest first, a keyset batch at a time (for exports)."""
    after = 0
    while True:
        query = _query(filters).where(AuditRecord.id > after).order_by(AuditRecord.id).limit(batch)
        rows = (await session.execute(query)).tuples().all()
        for record, person, unit in rows:
            yield Line(record, person, unit)
        if len(rows) < batch:
            return
        after = rows[-1][0].id


@dataclass(frozen=True)
class Broken:
    """A record whose hash does not match its content or whose link to the previous is cut."""

    id: int
    day: str
    reason: str  # "content" or "chain"


async def verify(session: AsyncSession, since: dt.date | None = None) -> tuple[int, list[Broken]]:
    """Recompute every day's chain (from `since`); how many records were checked, and the
    broken ones."""
    checked, broken, after = 0, [], 0
    last: dict[str, str] = {}
    while True:
        query = select(AuditRecord).where(AuditRecord.id > after)
        if since is not None:
            query = query.where(AuditRecord.day >= since.isoformat())
        rows = list(
            (await session.scalars(query.order_by(AuditRecord.id).limit(VERIFY_BATCH))).all()
        )
        for record in rows:
            checked += 1
            expected_prev = last.get(record.day, genesis(record.day))
            if record.prev_hash != expected_prev:
                broken.append(Broken(record.id, record.day, "chain"))
            if digest(record) != record.hash:
                broken.append(Broken(record.id, record.day, "content"))
            last[record.day] = record.hash
        session.expunge_all()
        if len(rows) < VERIFY_BATCH:
            return checked, broken
        after = rows[-1].id


async def purge(session: AsyncSession, before: dt.datetime) -> int:
    """Delete the records of whole days before `before` (kept AUDIT_RETENTION_DAYS)."""
    result = await session.execute(delete(AuditRecord).where(AuditRecord.day < day_of(before)))
    return int(getattr(result, "rowcount", 0) or 0)


async def for_applicant_cases(
    session: AsyncSession, case_ids: list[int], limit: int
) -> list[tuple[AuditRecord, str | None, str | None]]:
    """Staff views of these cases with the unit's and the agency's names, newest first."""
    query = (
        select(AuditRecord, Department.name, Agency.name)
        .outerjoin(Department, Department.id == AuditRecord.unit_id)
        .outerjoin(Agency, Agency.id == AuditRecord.agency_id)
        .where(AuditRecord.case_id.in_(case_ids), AuditRecord.actor_kind == "staff")
        .order_by(AuditRecord.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).tuples().all())
