"""好差评's vocabulary: the five levels and the second-level points each level offers
(for online service), as the national rules for rating government services define them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage import rating_links
from storage.models import BAD_LEVELS, LEVEL_SCORES, CaseRating, RatingLevel

# What went well, offered with 非常满意 · 满意 · 基本满意 (labels.yaml: rating_points).
GOOD_POINTS = ("overall", "efficiency", "guide", "convenience", "platform")
# What went wrong, offered with 不满意 · 非常不满意, beside a free text.
BAD_REASONS = ("slow", "guide_wrong", "inconvenient", "platform_hard", "attitude", "other")
OLD_SCORES = {str(score): level for level, score in LEVEL_SCORES.items()}  # a 1–5 button


LINK_CHANNEL = "link"  # CaseRating.channel of a rating given through a one-time link


@dataclass(frozen=True)
class RatingLinks:
    """One-time rating links on the web server (RATING_LINK_DAYS); no base: none issued.
    Each printed form of a delivered case issues one, so a case holds at most `per_case`
    usable links (RATING_LINKS_PER_CASE): printing again and again adds no rows beyond it."""

    base_url: str = ""  # the web chat's address, ending with /
    days: int = 30
    per_case: int = 20

    async def issue(self, session: AsyncSession, case_id: int, now: dt.datetime) -> str | None:
        """A new link for the case, or None where no web server is public or the case
        holds its cap of usable links."""
        if not self.base_url:
            return None
        if await rating_links.live_count(session, case_id, now) >= self.per_case:
            return None
        token = rating_links.issue(session, case_id, now, dt.timedelta(days=self.days))
        return f"{self.base_url}rate/{token}"


def level_of(choice: str) -> RatingLevel | None:
    """The level a button names: a level's key, or the 1–5 of a button sent before them."""
    if choice in OLD_SCORES:
        return OLD_SCORES[choice]
    try:
        return RatingLevel(choice)
    except ValueError:
        return None


def is_bad(level: str) -> bool:
    return level in BAD_LEVELS


def points_for(level: str) -> tuple[str, ...]:
    """The second-level points a level offers."""
    return BAD_REASONS if is_bad(level) else GOOD_POINTS


def toggle(rating: CaseRating, point: str) -> bool:
    """Tick or untick `point` on the rating; False if its level offers no such point."""
    if point not in points_for(rating.level):
        return False
    chosen = [p for p in rating.points if p in points_for(rating.level)]
    rating.points = [p for p in chosen if p != point] if point in chosen else [*chosen, point]
    return True
