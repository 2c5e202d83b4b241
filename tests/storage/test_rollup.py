"""服务统计's daily rollup (stats_daily) gives the same figures as the events it counts, on the
hand-worked history (tests/stats_history.py), for every scope and several ranges; migration
0600 backfills the same rows from the history. On both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select
from stats_history import RANGE, _applicant, _case, _unit, at, seed_history

from bot.app import App
from domain import stats
from storage import rollup
from storage import stats as events
from storage.models import CaseStatus, Department, StatsDaily

SPANS = [
    RANGE,
    stats.day_span(dt.date(2025, 10, 1), dt.date(2025, 10, 8)),  # National Day only
    stats.day_span(dt.date(2025, 10, 9), dt.date(2025, 10, 9)),
    stats.month_span(2025, 9),
    stats.month_span(2025, 10),
]


async def _figures(app: App, source: Any, unit: int | None) -> list[object]:
    months = stats.last_months(dt.date(2025, 10, 12))
    async with app.services.db.sessions() as session:
        found: list[object] = [
            await source.case_counts_by_month(session, months, unit),
            await source.ratings_by_month(session, months, unit),
        ]
        for span in SPANS:
            found += [
                await source.case_counts(session, span, unit),
                await source.case_counts_by_channel(session, span, unit),
                await source.case_counts_by_unit(session, span, unit),
                (await source.workdays_to(session, CaseStatus.ACCEPTED, span, unit)).counts,
                (await source.workdays_to(session, CaseStatus.COMPLETED, span, unit)).counts,
                await source.completed_on_time(session, span, unit),
                await source.ratings_by_level(session, span, unit),
            ]
    return found


async def test_the_rollup_gives_the_figures_of_the_events(app: App) -> None:
    await seed_history(app)
    async with app.services.db.sessions() as session:
        units = list(await session.scalars(select(Department.id)))
        whole = await rollup.case_counts(session, RANGE)
    # Worked by hand in stats_history.py: C1, C2, C3, C5 received in the range (C4 before it).
    assert whole == {"received": 4, "accepted": 2, "rejected": 1, "completed": 3, "delivered": 2}
    for unit in [None, *units]:
        assert await _figures(app, rollup, unit) == await _figures(app, events, unit), unit


async def _rows(app: App) -> list[tuple[Any, ...]]:
    async with app.services.db.sessions() as session:
        found = await session.execute(select(StatsDaily).order_by(*StatsDaily.__table__.c))
        return [(r.day, r.unit_id, r.channel, r.kind, r.value, r.count) for r in found.scalars()]


async def test_the_migration_backfills_the_rollup_from_the_history(app: App) -> None:
    await seed_history(app)
    counted = await _rows(app)
    assert (dt.date(2025, 10, 11), 0, "wechat", "rating:dissatisfied", 0, 1) in counted
    await app.services.db.downgrade("0510")
    await app.services.db.upgrade()
    assert await _rows(app) == counted


async def test_cases_received_at_once_on_one_day_each_count(app: App) -> None:
    """Concurrent transactions add to the same rollup rows (INSERT … ON CONFLICT DO UPDATE):
    none is lost, none fails."""
    people = [await _applicant(app, "web", f"rollup-{n}") for n in range(6)]
    await asyncio.gather(
        *(_case(app, person, ("construction_permit",), at(10, 9)) for person in people)
    )
    day = stats.day_span(dt.date(2025, 10, 9), dt.date(2025, 10, 9))
    unit = await _unit(app, "housing_environment")
    async with app.services.db.sessions() as session:
        assert await rollup.case_counts(session, day) == {"received": 6}
        assert await rollup.case_counts_by_unit(session, day) == {unit: {"received": 6}}
