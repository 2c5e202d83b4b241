"""好差评 through a one-time link: the token stands for the enterprise of one case (no chat
identity). The link is spent by the rating it gives, in the rating's transaction; the case
is still rated once whatever channel rates it first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from domain import cases as life
from domain import ratings
from domain.bad_ratings import BadRatingLimits
from domain.notices import Notice
from domain.policy import Actor
from storage import rating_links
from storage.models import Case, CaseStatus, RatingLevel

MAX_COMMENT = 1000  # characters, as in the chat (handlers/followup.py)


class LinkState(StrEnum):
    OPEN = "open"  # the rating may be given
    UNKNOWN = "unknown"  # never issued (or mistyped)
    EXPIRED = "expired"
    SPENT = "spent"  # this link rated the case already
    RATED = "rated"  # the case was rated on another channel, or is not waiting for a rating


@dataclass(frozen=True)
class Opened:
    state: LinkState
    number: str = ""
    project_name: str = ""


def _state(
    used: dt.datetime | None, expires: dt.datetime, case: Case, now: dt.datetime
) -> LinkState:
    if used is not None:
        return LinkState.SPENT
    if expires <= now:
        return LinkState.EXPIRED
    if case.status != CaseStatus.DELIVERED:
        return LinkState.RATED
    return LinkState.OPEN


async def open_link(session: AsyncSession, token: str, now: dt.datetime) -> Opened:
    """What the link shows now."""
    found = await rating_links.find(session, token)
    if found is None:
        return Opened(LinkState.UNKNOWN)
    link, case = found
    return Opened(_state(link.used_at, link.expires_at, case, now), case.number, case.project_name)


@dataclass
class Rated:
    state: LinkState
    number: str = ""
    notices: list[Notice] = field(default_factory=list)


async def rate_by_link(
    session: AsyncSession,
    token: str,
    level: RatingLevel,
    points: list[str],
    comment: str,
    limits: BadRatingLimits,
    now: dt.datetime,
) -> Rated:
    """Rate the link's case once and spend the link; a bad level opens a 差评 item. Points the
    level does not offer are dropped; the comment is cut to MAX_COMMENT."""
    opened = await open_link(session, token, now)
    if opened.state != LinkState.OPEN:
        return Rated(opened.state, opened.number)
    found = await rating_links.find(session, token)
    assert found is not None
    link, case = found
    if not await rating_links.spend(session, link.id, now):
        return Rated(LinkState.SPENT, case.number)
    actor = Actor.of_applicant(case.applicant_id)
    try:
        moved, rating = await life.rate(
            session, case.number, actor, level, ratings.LINK_CHANNEL, limits, now
        )
    except (life.StaleAction, life.NotNow):
        return Rated(LinkState.RATED, case.number)
    offered = ratings.points_for(level)
    rating.points = [p for p in dict.fromkeys(points) if p in offered]
    rating.comment = comment[:MAX_COMMENT] or None
    return Rated(LinkState.OPEN, case.number, moved.notices)
