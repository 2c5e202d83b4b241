"""Lead-unit administrators in the browser: the 操作日志 at /desk/audit (filters, CSV export)
and the agencies at /desk/agencies (assign, unassign). Every request checks the staff session
and the policy; each view and export is itself an audit record (with the client address)."""

from __future__ import annotations

import datetime as dt
import logging

from aiohttp import web

from bot.channels.web.channel import WebChannel, channel_of
from bot.channels.web.desk import _page, _root, _set_renewed, login_page
from bot.channels.web.staff_session import StaffSession
from dialogs.texts import render as render_text
from domain import agencies as assignments
from domain import audit, notices, policy
from domain.policy import Actor, Right
from services import audit_report
from storage import agencies
from storage import audit as store
from storage.models import WEB_CHANNEL

log = logging.getLogger(__name__)
FILTER_LIMIT = 60  # characters of a filter value kept
FORM_LIMIT = 4096  # bytes of an assignment form


async def _admin(
    request: web.Request, renewed: list[tuple[str, str]]
) -> tuple[WebChannel, StaffSession, Actor] | web.Response:
    """The signed-in lead-unit administrator, or the page to answer instead."""
    channel = channel_of(request)
    signed_in = await channel.staff.resolve(request, renewed)
    if signed_in is None:
        return login_page(channel)
    actor = Actor.of_staff(signed_in.staff)
    if not policy.can(actor, Right.READ_AUDIT):
        log.info("web audit refused staff=%s", signed_in.staff.id)
        return _page(render_text("web/not_allowed.html.j2", root=_root(channel)), status=403)
    return channel, signed_in, actor


def _filters(request: web.Request) -> store.Filters:
    query = request.query
    since = None
    try:
        since = dt.date.fromisoformat(query.get("since", "")[:10]) if query.get("since") else None
    except ValueError:
        since = None  # an unreadable date filters nothing rather than failing the page
    return store.Filters(
        case_number=query.get("case", "").strip()[:FILTER_LIMIT] or None,
        person=query.get("person", "").strip()[:FILTER_LIMIT] or None,
        since=since,
    )


async def _record(channel: WebChannel, request: web.Request, actor: Actor, action: str) -> None:
    note = audit.Note(action)
    client = channel.client_ip(request)
    await audit.record(channel.app.services.db, audit.entry(actor, note, WEB_CHANNEL, client))


async def audit_page(request: web.Request) -> web.Response:
    """GET desk/audit: the newest records matching case / person / since."""
    renewed: list[tuple[str, str]] = []
    found = await _admin(request, renewed)
    if isinstance(found, web.Response):
        return found
    channel, signed_in, actor = found
    filters = _filters(request)
    await _record(channel, request, actor, "audit.view")
    limit = channel.settings.audit_page_rows
    async with channel.app.services.db.sessions() as session:
        lines = await store.search(session, filters, limit)
    page = render_text(
        "web/audit.html.j2",
        root=_root(channel),
        staff=signed_in.staff,
        rows=[audit_report.row(line) for line in lines],
        header=audit_report.HEADER,
        filters=filters,
        limit=limit,
        query=request.query_string,
    )
    response = _page(page)
    _set_renewed(channel, request, response, renewed)
    return response


async def audit_csv(request: web.Request) -> web.StreamResponse:
    """GET desk/audit.csv: every matching record, streamed batch by batch."""
    found = await _admin(request, [])
    if isinstance(found, web.Response):
        return found
    channel, _, actor = found
    filters = _filters(request)
    await _record(channel, request, actor, "export.audit")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": "attachment; filename=audit.csv",
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    await response.write("\ufeff".encode())  # Excel reads UTF-8 CSV with a BOM
    async with channel.app.services.db.sessions() as session:
        async for chunk in audit_report.csv_chunks(store.stream(session, filters)):
            await response.write(chunk.encode())
    await response.write_eof()
    return response


async def agencies_page(request: web.Request, message: str = "") -> web.Response:
    """GET desk/agencies: the agencies and their contracts, and the assignment form."""
    renewed: list[tuple[str, str]] = []
    found = await _admin(request, renewed)
    if isinstance(found, web.Response):
        return found
    channel, signed_in, _ = found
    async with channel.app.services.db.sessions() as session:
        listed = await agencies.listing(session)
        people = {a.id: await agencies.agents(session, a.id) for a in listed}
    page = render_text(
        "web/agencies.html.j2",
        root=_root(channel),
        staff=signed_in.staff,
        agencies=listed,
        agents=people,
        csrf=channel.identity.csrf_token(signed_in.csrf_subject),
        message=message,
    )
    response = _page(page)
    _set_renewed(channel, request, response, renewed)
    return response


async def change_assignment(request: web.Request) -> web.Response:
    """POST desk/agencies: assign or unassign (a form with the page's CSRF token)."""
    found = await _admin(request, [])
    if isinstance(found, web.Response):
        return found
    channel, signed_in, actor = found
    if request.content_length is not None and request.content_length > FORM_LIMIT:
        raise web.HTTPRequestEntityTooLarge(max_size=FORM_LIMIT, actual_size=request.content_length)
    form = await request.post()
    token = str(form.get("csrf", ""))
    if not channel.identity.csrf_ok(signed_in.csrf_subject, token):
        raise web.HTTPForbidden(text="csrf")
    target, agency = str(form.get("target", "")).strip()[:40], str(form.get("agency", ""))[:100]
    agent = str(form.get("agent", "")).strip()[:40] or None
    end = form.get("action") == "unassign"
    if not target or not agency:
        raise web.HTTPBadRequest(text="target and agency")
    try:
        async with channel.app.services.db.transaction(immediate=True) as session:
            result = await assignments.change(session, actor, target, agency, agent, end=end)
            notices.enqueue(session, result.notices)
            note = audit.Note(
                "agency.unassign" if end else "agency.assign",
                case_number=result.case.number if result.case else None,
                key_project_id=result.project.id if result.project else None,
                fields=("agency_id",),
            )  # the record commits with the assignment, or neither does
            entry = audit.entry(actor, note, WEB_CHANNEL, channel.client_ip(request))
            await audit.append(session, entry)
    except assignments.AssignRefused as refused:
        return await agencies_page(request, render_text(refused.template, **refused.context))
    template = "agencies/unassigned.j2" if end else "agencies/assigned.j2"
    text = render_text(
        template,
        agency=result.agency,
        agent=result.agent,
        what=result.label,
        changed=result.changed,
    )
    return await agencies_page(request, text)


def add_admin_routes(web_app: web.Application, base: str) -> None:
    web_app.router.add_get(f"{base}/desk/audit", audit_page)
    web_app.router.add_get(f"{base}/desk/audit.csv", audit_csv)
    web_app.router.add_get(f"{base}/desk/agencies", agencies_page)
    web_app.router.add_post(f"{base}/desk/agencies", change_assignment)
