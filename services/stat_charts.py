"""The charts of 服务统计, in the order of its sections: drawn as SVG in /desk/stats and as
PNG in the docx 工作简报 (services/chart_png.py), from the same geometry."""

from __future__ import annotations

from dialogs.texts import label, labels
from services import charts
from services import figures as stats
from storage.models import RatingLevel

KINDS = ("received", "accepted", "rejected", "completed", "delivered")


def build_charts(figures: stats.Figures) -> list[charts.Chart]:
    """The charts of the figures, in the order of the page's sections."""
    kinds = labels("stats_kinds")
    drawn = [
        charts.bar_chart(
            label("stats", "chart_flow"),
            [(kinds[k], figures.cases.get(k, 0)) for k in KINDS],
        ),
        charts.bar_chart(
            label("stats", "chart_channels"),
            [(channel_name(c), counts.get("received", 0)) for c, counts in figures.by_channel],
        ),
        charts.bar_chart(
            label("stats", "chart_ratings"),
            [(label("rating_levels", lv), figures.ratings.get(lv, 0)) for lv in RatingLevel],
        ),
    ]
    if figures.months:
        months = [row.month for row in figures.months]
        drawn.append(
            charts.line_chart(
                label("stats", "chart_months"),
                months,
                [
                    (kinds["received"], [float(r.received) for r in figures.months]),
                    (kinds["delivered"], [float(r.delivered) for r in figures.months]),
                ],
            )
        )
        satisfaction = [
            None if r.satisfaction is None else round(r.satisfaction * 100, 1)
            for r in figures.months
        ]
        drawn.append(
            charts.line_chart(
                label("stats", "chart_satisfaction"),
                months,
                [(label("stats", "satisfaction"), satisfaction)],
                unit="%",
            )
        )
    if figures.problems_by_level is not None:
        drawn.append(
            charts.bar_chart(
                label("stats", "chart_problems"),
                [
                    (label("key_projects", f"level_{n}"), figures.problems_by_level.get(n, 0))
                    for n in range(1, 5)
                ],
            )
        )
    return drawn


def channel_name(key: str) -> str:
    return labels("stats_channels").get(key, key)
