"""/desk/stats (服务统计): the figures of a range for those who answer for the service, as
SVG charts drawn on the server, each with its table beneath. The staff session and the
statistics scope (domain/stats.py) are checked on every request; a bad range is a 400."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import quote

from aiohttp import web

from bot.channels.web.channel import channel_of
from bot.channels.web.desk import _page, _root, _set_renewed, login_page
from dialogs.texts import labels
from dialogs.texts import render as render_text
from domain import stats
from domain.policy import Actor
from services import report
from services.stat_charts import build_charts, channel_name
from services.workdays import today_in_china
from storage.models import RatingLevel

log = logging.getLogger(__name__)
MAX_QUERY = 10  # characters of a date in the query string


class BadRange(ValueError):
    """The range asked for cannot be read or is too long; the message is a template."""


def default_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """The last twelve months: from the first day of the month eleven months ago to today."""
    year, month = today.year, today.month - 11
    if month < 1:
        year, month = year - 1, month + 12
    return dt.date(year, month, 1), today


def parse_range(first: str, last: str, today: dt.date, max_days: int) -> tuple[dt.date, dt.date]:
    """The range of the query string (both or neither given), checked."""
    if not first and not last:
        return default_range(today)
    try:
        start = dt.date.fromisoformat(first[:MAX_QUERY])
        end = dt.date.fromisoformat(last[:MAX_QUERY])
    except ValueError:
        raise BadRange("web/stats_bad_date.j2") from None
    if end < start:
        raise BadRange("web/stats_bad_order.j2")
    if (end - start).days + 1 > max_days:
        raise BadRange("web/stats_too_long.j2")
    return start, end


async def stats_page(request: web.Request) -> web.Response:
    """GET desk/stats?from=YYYY-MM-DD&to=YYYY-MM-DD: 服务统计 for the roles allowed."""
    channel = channel_of(request)
    renewed: list[tuple[str, str]] = []
    signed_in = await channel.staff.resolve(request, renewed)
    if signed_in is None:
        return login_page(channel)
    actor = Actor.of_staff(signed_in.staff)
    scope = stats.scope_of(actor)
    root = _root(channel)
    if scope is None:
        log.info("web stats refused staff=%s", signed_in.staff.id)
        text = render_text("web/stats_not_allowed.html.j2", root=root)
        return _page(text, status=403)
    today = today_in_china()
    query = request.query
    try:
        first, last = parse_range(
            query.get("from", ""), query.get("to", ""), today, channel.settings.stats_max_days
        )
    except BadRange as bad:
        first, last = default_range(today)
        page = render_text(
            "web/stats.html.j2", root=root, staff=signed_in.staff, error=str(bad),
            first=first, last=last, figures=None, charts=[],
        )  # fmt: skip
        return _page(page, status=400)
    async with channel.app.services.db.sessions() as session:
        figures = await stats.gather(session, stats.day_span(first, last), scope, today)
    page = render_text(
        "web/stats.html.j2",
        root=root,
        staff=signed_in.staff,
        error=None,
        first=first,
        last=last,
        figures=figures,
        charts=build_charts(figures),
        kinds=labels("stats_kinds"),
        channel_name=channel_name,
        levels=list(RatingLevel),
    )
    log.info("web stats staff=%s unit=%s", signed_in.staff.id, scope.unit_id)
    response = _page(page)
    _set_renewed(channel, request, response, renewed)
    return response


async def report_download(request: web.Request) -> web.StreamResponse:
    """GET desk/report/YYYY-MM.docx|xlsx: the month's 工作简报 (the link of the monthly
    notice in the web chat), for those who see the whole service."""
    channel = channel_of(request)
    renewed: list[tuple[str, str]] = []
    signed_in = await channel.staff.resolve(request, renewed)
    if signed_in is None:
        return login_page(channel)
    root = _root(channel)
    scope = stats.scope_of(Actor.of_staff(signed_in.staff))
    if scope is None or scope.unit_id is not None:
        log.info("web report refused staff=%s", signed_in.staff.id)
        return _page(render_text("web/stats_not_allowed.html.j2", root=root), status=403)
    month, fmt = request.match_info["month"], request.match_info["fmt"]
    try:
        report.parse_month(month[:MAX_QUERY])
    except report.BadMonth:
        month = ""
    if not month or len(month) > MAX_QUERY or fmt not in report.FORMATS:
        return _page(render_text("web/report_bad_month.html.j2", root=root), status=400)
    document = await report.report_document(channel.app.services.db, month, fmt)
    log.info("web report staff=%s month=%s", signed_in.staff.id, month)
    response = web.Response(
        body=document.content,
        headers={
            "Content-Type": document.mime,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.name)}",
            "Cache-Control": "no-store",
        },
    )
    _set_renewed(channel, request, response, renewed)
    return response


def add_stats_routes(web_app: web.Application, base: str) -> None:
    web_app.router.add_get(f"{base}/desk/stats", stats_page)
    web_app.router.add_get(f"{base}/desk/report/{{month}}.{{fmt}}", report_download)
