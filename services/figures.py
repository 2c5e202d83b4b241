"""服务统计: the figures of a range gathered in one place for the /desk/stats page and the
monthly 工作简报 (services/report.py), from the aggregates of storage/stats.py. Who may see
which figures is domain/stats.py's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.workdays import CHINA
from storage import rollup, stats
from storage.models import CaseStatus, RatingLevel
from storage.stats import BadRatingFigures, Histogram, Span

GOOD_LEVELS = (RatingLevel.VERY_SATISFIED, RatingLevel.SATISFIED, RatingLevel.BASIC)
S = CaseStatus
MONTHS = 12  # the trend charts: the last twelve months


@dataclass(frozen=True)
class StatsScope:
    """The whole service (unit_id None) or one unit."""

    unit_id: int | None = None


def day_span(first: dt.date, last: dt.date) -> Span:
    """China-local days first … last, both included."""
    start = dt.datetime.combine(first, dt.time(0), CHINA).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), CHINA)
    return Span(start, end.astimezone(dt.UTC))


def month_span(year: int, month: int) -> Span:
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return day_span(first, following - dt.timedelta(days=1))


def last_months(today: dt.date, count: int = MONTHS) -> list[tuple[str, Span]]:
    """(YYYY-MM, span) of the `count` months up to today's, oldest first."""
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append((f"{year}-{month:02d}", month_span(year, month)))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months[::-1]


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Durations:
    count: int
    median: int | None
    p90: int | None

    @classmethod
    def of(cls, histogram: Histogram) -> Durations:
        return cls(histogram.total, histogram.percentile(0.5), histogram.percentile(0.9))


@dataclass(frozen=True)
class MonthRow:
    month: str
    received: int
    delivered: int
    ratings: int
    satisfied: int  # 非常满意 + 满意 + 基本满意

    @property
    def satisfaction(self) -> float | None:
        return share(self.satisfied, self.ratings)


@dataclass(frozen=True)
class Figures:
    """Everything /desk/stats and the 工作简报 show for one range and scope."""

    span: Span
    scope: StatsScope
    unit_name: str | None
    cases: dict[str, int]
    by_unit: list[tuple[str, dict[str, int]]]
    by_channel: list[tuple[str, dict[str, int]]]
    to_accept: Durations
    to_complete: Durations
    completed: int
    completed_on_time: int
    consultations: dict[str, int] | None  # the whole service only: the FAQ knows no unit
    answers: Durations
    answered_on_time: int
    ratings: dict[str, int]
    bad: BadRatingFigures
    problems_by_level: dict[int, int] | None  # the whole service only
    problems_solved: int | None
    months: list[MonthRow] = field(default_factory=list)

    @property
    def rating_total(self) -> int:
        return sum(self.ratings.values())

    @property
    def satisfaction(self) -> float | None:
        """满意率: 非常满意, 满意 and 基本满意 among all ratings."""
        good = sum(self.ratings.get(level, 0) for level in GOOD_LEVELS)
        return share(good, self.rating_total)

    @property
    def on_time_share(self) -> float | None:
        return share(self.completed_on_time, self.completed)

    @property
    def answered_share(self) -> float | None:
        return share(self.answered_on_time, self.answers.count)

    @property
    def bad_followed_up_on_time(self) -> float | None:
        """差评 verified and reported back, each within its working days."""
        return share(min(self.bad.verified_on_time, self.bad.fixed_on_time), self.bad.opened)


async def gather(
    session: AsyncSession, span: Span, scope: StatsScope, today: dt.date, months: bool = True
) -> Figures:
    """Every figure of the range (and, with `months`, the twelve months up to today)."""
    unit = scope.unit_id
    names = await stats.unit_names(session)
    by_unit = await rollup.case_counts_by_unit(session, span, unit)
    by_channel = await rollup.case_counts_by_channel(session, span, unit)
    completed, on_time = await rollup.completed_on_time(session, span, unit)
    answers, answered_on_time = await stats.first_answers(session, span, unit)
    consulted = None
    if unit is None:
        found = await stats.consultations(session, span)
        consulted = {outcome: sum(per.values()) for outcome, per in found.items()}
    rows = []
    if months:  # two grouped queries for the twelve months, not two per month
        recent = last_months(today)
        counts = await rollup.case_counts_by_month(session, recent, unit)
        levels = await rollup.ratings_by_month(session, recent, unit)
        for month, _ in recent:
            flow, rated = counts.get(month, {}), levels.get(month, {})
            rows.append(
                MonthRow(
                    month,
                    flow.get(stats.RECEIVED, 0),
                    flow.get(CaseStatus.DELIVERED, 0),
                    sum(rated.values()),
                    sum(rated.get(level, 0) for level in GOOD_LEVELS),
                )
            )
    return Figures(
        span=span,
        scope=scope,
        unit_name=names.get(unit) if unit is not None else None,
        cases=await rollup.case_counts(session, span, unit),
        by_unit=[(names[u], by_unit[u]) for u in names if u in by_unit],
        by_channel=sorted(by_channel.items()),
        to_accept=Durations.of(await rollup.workdays_to(session, CaseStatus.ACCEPTED, span, unit)),
        to_complete=Durations.of(
            await rollup.workdays_to(session, CaseStatus.COMPLETED, span, unit)
        ),
        completed=completed,
        completed_on_time=on_time,
        consultations=consulted,
        answers=Durations.of(answers),
        answered_on_time=answered_on_time,
        ratings=await rollup.ratings_by_level(session, span, unit),
        bad=await stats.bad_rating_figures(session, span, unit),
        problems_by_level=await stats.problems_by_level(session) if unit is None else None,
        problems_solved=await stats.problems_solved(session, span) if unit is None else None,
        months=rows,
    )
