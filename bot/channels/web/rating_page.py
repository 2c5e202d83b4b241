"""/rate/<token>: the one-time rating link's small page. GET shows the five levels, the
points and a comment box; POST rates the case once and spends the link. The token is the only
authority (no chat identity); a bad form is a 400 that keeps what was chosen and typed."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from aiohttp import web

from bot.channels.web.channel import channel_of
from bot.channels.web.desk import _page, _root
from dialogs.texts import label
from dialogs.texts import render as render_text
from domain import notices, ratings
from domain.rating_link import MAX_COMMENT, LinkState, open_link, rate_by_link
from storage.models import RatingLevel, utcnow

log = logging.getLogger(__name__)
MAX_FIELDS = 20  # form fields read from a submission
STATUS = {
    LinkState.OPEN: 200,
    LinkState.UNKNOWN: 404,
    LinkState.EXPIRED: 410,
    LinkState.SPENT: 410,
    LinkState.RATED: 409,
}


def _page_of(
    request: web.Request, state: LinkState, status: int, **context: object
) -> web.Response:
    context.setdefault("done", False)
    channel = channel_of(request)
    text = render_text(
        "web/rate.html.j2",
        root=_root(channel),
        state=str(state),
        levels=[(str(lv), label("rating_levels", lv)) for lv in RatingLevel],
        good=[(p, label("rating_points", p)) for p in ratings.GOOD_POINTS],
        bad=[(p, label("rating_points", p)) for p in ratings.BAD_REASONS],
        max_comment=MAX_COMMENT,
        **context,
    )
    response = _page(text, status=status)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response


async def rating_page(request: web.Request) -> web.Response:
    channel = channel_of(request)
    async with channel.app.services.db.sessions() as session:
        opened = await open_link(session, request.match_info["token"], utcnow())
    return _page_of(
        request, opened.state, STATUS[opened.state], number=opened.number,
        project=opened.project_name, chosen=None, points=[], comment="", error=None,
    )  # fmt: skip


async def _form(request: web.Request, limit: int) -> dict[str, list[str]] | None:
    """The submitted fields, or None when the body is over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        return None
    text = body.decode("utf-8", errors="replace")
    return parse_qs(text, max_num_fields=MAX_FIELDS, keep_blank_values=True)


async def rate_submit(request: web.Request) -> web.Response:
    channel = channel_of(request)
    services = channel.app.services
    token = request.match_info["token"]
    try:
        form = await _form(request, channel.settings.rating_form_bytes)
    except ValueError:  # more fields than MAX_FIELDS
        form = None
    async with services.db.sessions() as session:
        opened = await open_link(session, token, utcnow())
    if opened.state != LinkState.OPEN:
        return _page_of(request, opened.state, STATUS[opened.state], number=opened.number,
                        project="", chosen=None, points=[], comment="", error=None)  # fmt: skip
    shown: dict[str, object] = {"number": opened.number, "project": opened.project_name}
    if form is None:
        return _page_of(request, LinkState.OPEN, 413, **shown, chosen=None, points=[],
                        comment="", error="too_large")  # fmt: skip
    choice = form.get("level", [""])[0][:20]
    level = None if choice in ratings.OLD_SCORES else ratings.level_of(choice)
    points = [p[:20] for p in form.get("point", [])]
    comment = form.get("comment", [""])[0].strip()
    kept: dict[str, object] = {
        "chosen": str(level) if level else None,
        "points": points,
        "comment": comment,
    }
    if level is None:
        return _page_of(request, LinkState.OPEN, 400, **shown, **kept, error="no_level")
    if len(comment) > MAX_COMMENT:
        return _page_of(request, LinkState.OPEN, 400, **shown, **kept, error="too_long")
    async with services.db.transaction(immediate=True) as session:
        rated = await rate_by_link(
            session, token, level, points, comment, services.bad_ratings, utcnow()
        )
        notices.enqueue(session, rated.notices)
    if rated.state != LinkState.OPEN:
        return _page_of(request, rated.state, STATUS[rated.state], number=rated.number,
                        project="", chosen=None, points=[], comment="", error=None)  # fmt: skip
    log.info("case rated by link number=%s level=%s", rated.number, level)
    return _page_of(request, LinkState.OPEN, 200, **shown, **kept, error=None, done=True)


def add_rating_routes(web_app: web.Application, base: str) -> None:
    web_app.router.add_get(f"{base}/rate/{{token}}", rating_page)
    web_app.router.add_post(f"{base}/rate/{{token}}", rate_submit)
