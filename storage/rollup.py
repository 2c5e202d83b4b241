"""服务统计's daily rollup (`stats_daily`): counted in the transaction of each event, read by
/desk/stats and the monthly 工作简报. At 100k cases the same figures read from the events took
about 2 s (docs/benchmarks.md); the rollup holds at most days × (units + 1) × channels × kinds
rows. storage/stats.py keeps the event queries as the reference the rollup is checked against
(tests/storage/test_rollup.py) and for the figures that are not rolled up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Applicant, Case, CaseItem, CaseStatus, StatsDaily
from storage.stats import COUNTED_STEPS, QR, RECEIVED, Histogram, Span

CHINA = ZoneInfo("Asia/Shanghai")  # the days the figures are counted in
WHOLE = 0  # unit_id of the whole service
ACCEPTED_DAYS = "accepted_workdays"  # histogram: working days from 提交 to 受理
COMPLETED_DAYS = "completed_workdays"  # histogram: working days from 提交 to 办结
ON_TIME = "completed_on_time"  # completed with no clock ever run out
RATING = "rating:"  # + the level
FLOW = (RECEIVED, *(str(step) for step in COUNTED_STEPS))


def day_of(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(CHINA).date()


def kinds_of(case: Case, status: CaseStatus) -> list[tuple[str, int]]:
    """What entering `status` counts, with the figures already kept on the case."""
    if status == CaseStatus.SUBMITTED:
        return [(RECEIVED, 0)]
    if status not in COUNTED_STEPS:
        return []
    kinds = [(str(status), 0)]
    if status == CaseStatus.ACCEPTED and case.accepted_workdays is not None:
        kinds.append((ACCEPTED_DAYS, case.accepted_workdays))
    if status == CaseStatus.COMPLETED:
        if case.completed_workdays is not None:
            kinds.append((COMPLETED_DAYS, case.completed_workdays))
        if not case.late:
            kinds.append((ON_TIME, 0))
    return kinds


def rating_kind(level: str) -> tuple[str, int]:
    return (RATING + level, 0)


async def count(
    session: AsyncSession, case: Case, kinds: Iterable[tuple[str, int]], at: dt.datetime
) -> None:
    """Add one to each kind on the case's day, for the whole service and each unit with an
    item in the case, under the case's channel."""
    kinds = list(kinds)
    if not kinds:
        return
    source, channel = (
        await session.execute(
            select(Applicant.source, Applicant.channel).where(Applicant.id == case.applicant_id)
        )
    ).one()
    units = await session.scalars(
        select(CaseItem.department_id)
        .where(CaseItem.case_id == case.id, CaseItem.department_id.is_not(None))
        .distinct()
    )
    day = day_of(at)
    key = QR if source is not None else str(channel)
    # Sorted, so two transactions take the rows' locks in one order (no deadlock).
    rows = sorted(
        (day, unit, key, kind, value) for unit in {WHOLE, *units} for kind, value in kinds
    )
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(StatsDaily).values(
        [
            {"day": d, "unit_id": u, "channel": c, "kind": k, "value": v, "count": 1}
            for d, u, c, k, v in rows
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["day", "unit_id", "channel", "kind", "value"],
            set_={"count": StatsDaily.count + statement.excluded.count},
        )
    )


# -- the figures ---------------------------------------------------------------------------


def _days(span: Span) -> tuple[dt.date, dt.date]:
    """[first, end) China-local days of a span of whole days (services/figures.py's)."""
    return day_of(span.start), day_of(span.end)


def _in(span: Span) -> ColumnElement[bool]:
    first, end = _days(span)
    return and_(StatsDaily.day >= first, StatsDaily.day < end)


def _scope(unit_id: int | None) -> ColumnElement[bool]:
    return StatsDaily.unit_id == (WHOLE if unit_id is None else unit_id)


async def case_counts(
    session: AsyncSession, span: Span, unit_id: int | None = None
) -> dict[str, int]:
    query = (
        select(StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(span), _scope(unit_id), StatsDaily.kind.in_(FLOW))
        .group_by(StatsDaily.kind)
    )
    return {str(kind): int(n) for kind, n in await session.execute(query)}


async def case_counts_by_channel(
    session: AsyncSession, span: Span, unit_id: int | None = None
) -> dict[str, dict[str, int]]:
    query = (
        select(StatsDaily.channel, StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(span), _scope(unit_id), StatsDaily.kind.in_(FLOW))
        .group_by(StatsDaily.channel, StatsDaily.kind)
    )
    found: dict[str, dict[str, int]] = {}
    for channel, kind, n in await session.execute(query):
        found.setdefault(str(channel), {})[str(kind)] = int(n)
    return found


async def case_counts_by_unit(
    session: AsyncSession, span: Span, unit_id: int | None = None
) -> dict[int, dict[str, int]]:
    unit = StatsDaily.unit_id != WHOLE if unit_id is None else StatsDaily.unit_id == unit_id
    query = (
        select(StatsDaily.unit_id, StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(span), unit, StatsDaily.kind.in_(FLOW))
        .group_by(StatsDaily.unit_id, StatsDaily.kind)
    )
    found: dict[int, dict[str, int]] = {}
    for department_id, kind, n in await session.execute(query):
        found.setdefault(int(department_id), {})[str(kind)] = int(n)
    return found


async def workdays_to(
    session: AsyncSession, step: CaseStatus, span: Span, unit_id: int | None = None
) -> Histogram:
    kind = ACCEPTED_DAYS if step == CaseStatus.ACCEPTED else COMPLETED_DAYS
    query = (
        select(StatsDaily.value, func.sum(StatsDaily.count))
        .where(_in(span), _scope(unit_id), StatsDaily.kind == kind)
        .group_by(StatsDaily.value)
    )
    return Histogram({int(v): int(n) for v, n in await session.execute(query)})


async def completed_on_time(
    session: AsyncSession, span: Span, unit_id: int | None = None
) -> tuple[int, int]:
    found = await _sums(session, span, unit_id, (str(CaseStatus.COMPLETED), ON_TIME))
    return found.get(str(CaseStatus.COMPLETED), 0), found.get(ON_TIME, 0)


async def ratings_by_level(
    session: AsyncSession, span: Span, unit_id: int | None = None
) -> dict[str, int]:
    query = (
        select(StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(span), _scope(unit_id), StatsDaily.kind.startswith(RATING))
        .group_by(StatsDaily.kind)
    )
    return {str(kind).removeprefix(RATING): int(n) for kind, n in await session.execute(query)}


async def _sums(
    session: AsyncSession, span: Span, unit_id: int | None, kinds: tuple[str, ...]
) -> dict[str, int]:
    query = (
        select(StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(span), _scope(unit_id), StatsDaily.kind.in_(kinds))
        .group_by(StatsDaily.kind)
    )
    return {str(kind): int(n) for kind, n in await session.execute(query)}


def _month_of(months: list[tuple[str, Span]]) -> ColumnElement[str]:
    return case(*((_in(span), literal(month)) for month, span in months), else_=literal(""))


async def _by_month(
    session: AsyncSession, months: list[tuple[str, Span]], unit_id: int | None, kinds: Any
) -> list[tuple[str, str, int]]:
    if not months:
        return []
    month = _month_of(months).label("month")
    whole = Span(months[0][1].start, months[-1][1].end)
    query = (
        select(month, StatsDaily.kind, func.sum(StatsDaily.count))
        .where(_in(whole), _scope(unit_id), kinds)
        .group_by(month, StatsDaily.kind)
    )
    return [(str(m), str(k), int(n)) for m, k, n in await session.execute(query)]


async def case_counts_by_month(
    session: AsyncSession, months: list[tuple[str, Span]], unit_id: int | None = None
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for month, kind, n in await _by_month(session, months, unit_id, StatsDaily.kind.in_(FLOW)):
        found.setdefault(month, {})[kind] = n
    return found


async def ratings_by_month(
    session: AsyncSession, months: list[tuple[str, Span]], unit_id: int | None = None
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    rated = StatsDaily.kind.startswith(RATING)
    for month, kind, n in await _by_month(session, months, unit_id, rated):
        found.setdefault(month, {})[kind.removeprefix(RATING)] = n
    return found
