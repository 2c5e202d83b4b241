"""服务统计: who may see which figures. Administrators and the chiefs of the lead units
(政务服务中心, 产业促进局) see the whole service; a unit's 首席责任人 sees their own unit;
nobody else sees statistics. The figures themselves are services/figures.py's (re-exported
here for the callers that ask the domain)."""

from __future__ import annotations

from domain.policy import Actor
from services.figures import (
    CHINA,
    GOOD_LEVELS,
    MONTHS,
    Durations,
    Figures,
    MonthRow,
    StatsScope,
    day_span,
    gather,
    last_months,
    month_span,
    share,
)
from storage.models import ActorKind, Role

LEAD_UNITS = ("government_services", "industry_promotion")  # DESIGN.md: the lead units

__all__ = [
    "CHINA",
    "GOOD_LEVELS",
    "LEAD_UNITS",
    "MONTHS",
    "Durations",
    "Figures",
    "MonthRow",
    "StatsScope",
    "day_span",
    "gather",
    "last_months",
    "month_span",
    "scope_of",
    "share",
]


def scope_of(actor: Actor) -> StatsScope | None:
    """What statistics this actor may see; None: none."""
    if actor.kind != ActorKind.STAFF:
        return None
    if actor.role == Role.ADMIN:
        return StatsScope()
    if actor.role == Role.CHIEF:
        return StatsScope() if actor.unit_code in LEAD_UNITS else StatsScope(actor.unit_id)
    return None
