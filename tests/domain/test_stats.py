"""服务统计: every figure of the seeded history (tests/stats_history.py, which works them out
by hand), each role's scope, a range across National Day; on both backends."""

from __future__ import annotations

import datetime as dt

from stats_history import RANGE, _applicant, _case, _staff, _unit, seed_history

from bot.app import App
from domain import stats
from domain.policy import Actor
from services.workdays import CHINA
from storage import stats as queries


async def test_figures_of_the_whole_service_across_national_day(app: App) -> None:
    await seed_history(app)
    async with app.services.db.sessions() as session:
        figures = await stats.gather(session, RANGE, stats.StatsScope(), dt.date(2025, 10, 12))

    assert figures.cases == {
        "received": 4, "accepted": 2, "rejected": 1, "completed": 3, "delivered": 2,
    }  # fmt: skip
    assert dict(figures.by_channel) == {
        "web": {"received": 1, "accepted": 1, "completed": 2, "delivered": 1},
        "wechat": {"received": 2, "accepted": 1, "completed": 1, "delivered": 1},
        "qr": {"received": 1, "rejected": 1},
    }
    assert figures.by_unit == [  # in the roster's order
        ("产业促进局", {"received": 1}),
        ("财政局", {"received": 1, "rejected": 1}),
        ("住建环保局", {"received": 1, "accepted": 1, "completed": 2, "delivered": 1}),
        ("国土规划局", {"received": 1, "accepted": 1, "completed": 2, "delivered": 1}),
    ]
    # 受理 after 1 and 3 working days: median 1, 90th percentile 3 (nearest rank of 2).
    assert figures.to_accept == stats.Durations(2, 1, 3)
    # 办结 after 2, 4 and 9 working days.
    assert figures.to_complete == stats.Durations(3, 4, 9)
    assert (figures.completed, figures.completed_on_time) == (3, 2)  # C2's clock ran out
    assert figures.consultations == {"answer": 3, "choose": 1, "route": 2}
    # First answers after 2, 49 and 215 hours; the 215 hours span the holiday: on time.
    assert figures.answers == stats.Durations(3, 49, 215)
    assert figures.answered_on_time == 2
    assert figures.ratings == {"very_satisfied": 1, "dissatisfied": 1}
    assert figures.satisfaction == 0.5
    assert figures.bad == queries.BadRatingFigures(
        opened=1, verified=1, verified_on_time=1, fixed=0, fixed_on_time=0, reviewed=0
    )
    assert figures.bad_followed_up_on_time == 0.0  # 反馈 not yet given
    assert figures.problems_by_level == {1: 1, 3: 1}
    assert figures.problems_solved == 1
    months = {row.month: row for row in figures.months}
    assert len(figures.months) == 12 and figures.months[0].month == "2024-11"
    assert (months["2025-09"].received, months["2025-09"].delivered) == (3, 0)
    october = months["2025-10"]
    # October: C3 and C5 received; C1, C2 and (on the 13th, after the range) C4 delivered.
    assert (october.received, october.delivered, october.ratings, october.satisfied) == (2, 3, 2, 1)


async def test_a_units_chief_sees_their_unit_and_others_see_no_statistics(app: App) -> None:
    await seed_history(app)
    names = ["陈晨", "周静", "赵刚", "邓伟", "曹琳", "李娜", "刘洋"]
    scopes = {name: stats.scope_of(Actor.of_staff(await _staff(app, name))) for name in names}
    land = await _unit(app, "land_planning")
    assert scopes == {
        "陈晨": stats.StatsScope(),  # administrator
        "周静": stats.StatsScope(),  # 政务服务中心's chief: a lead unit
        "赵刚": stats.StatsScope(),  # 产业促进局's chief: a lead unit
        "邓伟": stats.StatsScope(land),  # 国土规划局's chief: their unit
        "曹琳": None,
        "李娜": None,
        "刘洋": None,
    }
    assert stats.scope_of(Actor.of_applicant(1)) is None
    async with app.services.db.sessions() as session:
        figures = await stats.gather(session, RANGE, stats.StatsScope(land), dt.date(2025, 10, 12))
    # C2 and C4 have an item of 国土规划局.
    assert figures.unit_name == "国土规划局"
    assert figures.cases == {"received": 1, "accepted": 1, "completed": 2, "delivered": 1}
    assert figures.by_unit == [("国土规划局", figures.cases)]
    assert figures.to_accept == stats.Durations(1, 3, 3)
    assert figures.to_complete == stats.Durations(2, 4, 9)
    assert (figures.completed, figures.completed_on_time) == (2, 1)
    assert figures.answers == stats.Durations(1, 215, 215)
    assert figures.ratings == {"dissatisfied": 1} and figures.satisfaction == 0.0
    assert figures.bad.opened == 1
    assert figures.consultations is None and figures.problems_by_level is None


def test_percentiles_by_nearest_rank() -> None:
    histogram = queries.Histogram({1: 5, 2: 3, 10: 2})  # ten values
    assert histogram.percentile(0.5) == 1  # rank 5
    assert histogram.percentile(0.9) == 10  # rank 9
    assert queries.Histogram({}).percentile(0.5) is None


async def test_the_months_are_china_months_and_follow_the_scope(app: App) -> None:
    """The twelve months come from two grouped queries; a case received at 00:30 on
    1 October in China (16:30 UTC on 30 September) counts in October."""
    await seed_history(app)
    web = await _applicant(app, "web", "stats-midnight")
    midnight = dt.datetime(2025, 10, 1, 0, 30, tzinfo=CHINA).astimezone(dt.UTC)
    await _case(app, web, ("fiscal_review",), midnight)  # 财政局's item
    finance = stats.StatsScope(await _unit(app, "finance"))
    async with app.services.db.sessions() as session:
        whole = await stats.gather(session, RANGE, stats.StatsScope(), dt.date(2025, 10, 12))
        unit = await stats.gather(session, RANGE, finance, dt.date(2025, 10, 12))
    months = {row.month: row for row in whole.months}
    assert (months["2025-09"].received, months["2025-10"].received) == (3, 3)
    # 财政局: C3 (9 October) and the midnight case; nothing delivered or rated.
    assert [(r.month, r.received, r.delivered, r.ratings) for r in unit.months[-2:]] == [
        ("2025-09", 0, 0, 0),
        ("2025-10", 2, 0, 0),
    ]
