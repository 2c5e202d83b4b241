"""Staff in the browser: binding it with /bind, signing it out, the work list at /desk and
its exports. Every request is checked against the staff session (staff_session.py) and the
visibility policy; without a live session the answer is the login page, never data."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.channels.web import render
from bot.channels.web.channel import WebChannel, channel_of
from bot.channels.web.staff_session import STAFF_COOKIE, StaffSession
from dialogs.texts import label, labels
from dialogs.texts import render as render_text
from domain import appointments, audit, desk, policy, stats
from domain.buttons import CaseView, ProjectView, QuestionShow
from domain.policy import Actor, Right
from services import export
from services.workdays import CHINA
from storage import questions, staff_devices
from storage.cases import ACTIVE
from storage.db import Database
from storage.key_projects import TOP_LEVEL
from storage.models import WEB_CHANNEL, Staff, staff_web_chat, utcnow

log = logging.getLogger(__name__)
BIND_COMMAND = "/bind"
CSRF_HEADER = "X-CSRF-Token"
CASE_NUMBER = re.compile(r"BDB-\d{4}-\d{6}")
HTML = "text/html"


def open_target(target: str) -> str | None:
    """The button data of a screen the desk links to (case, question, key project); only
    screens that show something, so a crafted link can never take a step."""
    kind, _, ident = target.partition(":")
    if kind == "case" and CASE_NUMBER.fullmatch(ident):
        return CaseView(ident).pack()
    if kind == "question" and ident.isdigit():
        return QuestionShow(int(ident)).pack()
    if kind == "project" and ident.isdigit():
        return ProjectView(int(ident)).pack()
    return None


async def still_signed_in(channel: WebChannel, signed_in: StaffSession) -> bool:
    """Whether the browser's device is still live (checked on every message it sends)."""
    async with channel.app.services.db.sessions() as session:
        found = await staff_devices.signed_in(session, signed_in.device_id, signed_in.nonce)
    return found is not None


def _page(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type=HTML, charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def _set_renewed(
    channel: WebChannel,
    request: web.Request,
    response: web.StreamResponse,
    renewed: list[tuple[str, str]],
) -> None:
    for _, value in renewed:
        channel.staff.set_cookie(response, value, _cookie_path(channel), channel.is_https(request))


def _cookie_path(channel: WebChannel) -> str:
    return channel.settings.web_base_path or "/"


def staff_page(
    channel: WebChannel,
    request: web.Request,
    signed_in: StaffSession,
    renewed: list[tuple[str, str]],
) -> web.Response:
    """The chat page of a signed-in staff member."""
    csrf = channel.identity.csrf_token(signed_in.csrf_subject)
    page = render_text(
        "web/index.html.j2",
        csrf=csrf,
        staff=signed_in.staff,
        greeting=None,
        elder=channel.elder(request),
    )
    response = _page(page)
    _set_renewed(channel, request, response, renewed)
    return response


def login_page(channel: WebChannel) -> web.Response:
    """What a browser without a live staff session gets instead of staff data."""
    return _page(render_text("web/login.html.j2", root=_root(channel)), status=401)


def _root(channel: WebChannel) -> str:
    return f"{channel.settings.web_base_path}/"


# -- binding and signing out ---------------------------------------------------------------


async def _csrf_subject(request: web.Request) -> tuple[str, StaffSession | None]:
    """The browser's chat (or staff device) if the POST carries its CSRF token; else 403."""
    channel = channel_of(request)
    chat_id, signed_in = await channel.visitor(request)
    subject = signed_in.csrf_subject if signed_in else chat_id
    if subject is None or not channel.identity.csrf_ok(subject, request.headers.get(CSRF_HEADER)):
        log.info("web staff post refused: csrf")
        raise web.HTTPForbidden(text="csrf")
    if "Origin" in request.headers and not channel.origin_ok(request):
        raise web.HTTPForbidden(text="origin")
    assert chat_id is not None
    return chat_id, signed_in


async def bind(request: web.Request) -> web.Response:
    """`/bind CODE` typed in the page: this browser becomes the staff member's (a new
    device); their Telegram or other binding stays."""
    channel = channel_of(request)
    chat_id, signed_in = await _csrf_subject(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="json") from None
    code = str(body.get("code", ""))[:64] if isinstance(body, dict) else ""
    services = channel.app.services
    ended: int | None = None
    async with services.db.transaction() as session:
        staff = await questions.redeem_invite(session, code) if code else None
        if staff is not None:
            if signed_in is not None:  # bound again in this browser: the old device ends
                await staff_devices.revoke(session, signed_in.staff.id, signed_in.device_id)
                ended = signed_in.device_id
            agent = request.headers.get("User-Agent", "")
            device = await staff_devices.bind(session, staff, channel.staff.lifetime, agent)
            text = render_text("staff/bound.j2", staff=staff)
    if staff is None:
        log.warning("web staff bind refused: unknown, used or expired code")
        message = render.bot_message(render_text("staff/bind_failed.j2"), [])
        await channel.push(chat_id, message)
        channel.history.add(chat_id, [message])
        return web.json_response({"ok": False})
    log.info("web staff bound staff=%s device=%s", staff.id, device.id)
    if ended is not None:
        await channel.hub.sign_out_device(ended)
    channel.history.add(staff_web_chat(staff.id), [render.bot_message(text, [])])
    await channel.history.flush()
    response = web.json_response({"ok": True})
    value = channel.staff.cookie_value(device.id, device.nonce)
    channel.staff.set_cookie(response, value, _cookie_path(channel), channel.is_https(request))
    return response


async def unbind(request: web.Request) -> web.Response:
    """解除绑定 on the page: this browser's device ends; other channels stay bound."""
    channel = channel_of(request)
    _, signed_in = await _csrf_subject(request)
    if signed_in is None:
        raise web.HTTPForbidden(text="staff")
    async with channel.app.services.db.transaction() as session:
        await staff_devices.revoke(session, signed_in.staff.id, signed_in.device_id)
    log.info("web staff unbound staff=%s device=%s", signed_in.staff.id, signed_in.device_id)
    await channel.hub.sign_out_device(signed_in.device_id)
    response = web.json_response({"ok": True})
    response.del_cookie(STAFF_COOKIE, path=_cookie_path(channel))
    return response


# -- the work list ---------------------------------------------------------------------------


def _status_options() -> list[tuple[str, str]]:
    statuses = labels("status")
    options = [(key, text) for key, text in labels("question_status").items()]
    options += [(str(s), statuses[str(s)]) for s in ACTIVE]
    options += [
        (f"level_{n}", label("key_projects", f"level_{n}")) for n in range(1, TOP_LEVEL + 1)
    ]
    return options


def status_label(row: desk.Row) -> str:
    if row.kind == desk.Kind.CASE:
        return label("status", row.status)
    if row.kind == desk.Kind.QUESTION:
        return label("question_status", row.status)
    return label("key_projects", row.status)


async def work_list(request: web.Request) -> web.Response:
    """GET desk: 待办事项 of the signed-in staff member, filtered by the query string, a page
    at a time (`after`: the row the chosen kind's page starts after)."""
    channel = channel_of(request)
    renewed: list[tuple[str, str]] = []
    signed_in = await channel.staff.resolve(request, renewed)
    if signed_in is None:
        return login_page(channel)
    query = request.query
    filters = desk.Filters.parse(
        query.get("kind", ""), query.get("status", ""), query.get("q", ""), query.get("after", "")
    )
    actor = Actor.of_staff(signed_in.staff)
    if not actor.in_contract:  # an agent whose agency's contract does not run today
        return _page(render_text("web/not_allowed.html.j2", root=_root(channel)), status=403)
    db, size = channel.app.services.db, channel.settings.desk_page_size
    week = query.get("agenda") == "week"
    now = channel.app.services.clock()
    page, shown = await desk_text(db, signed_in.staff, filters, size, now=now, week=week)
    await _audit(channel, request, actor, audit.Note("desk.view", fields=shown))
    response = _page(page)
    _set_renewed(channel, request, response, renewed)
    return response


async def desk_text(
    db: Database,
    staff: Staff,
    filters: desk.Filters,
    size: int,
    *,
    now: dt.datetime | None = None,
    week: bool = False,
) -> tuple[str, tuple[str, ...]]:
    """The work-list page of this staff member (one page of rows and the links onward, and
    the day's or the week's appointments), and the enterprises' fields it shows (the 操作日志
    records which fields were seen)."""
    actor = Actor.of_staff(staff)
    now = now or utcnow()
    async with db.sessions() as session:
        found = await desk.work_list(session, actor, filters, size, now)
        agenda = await appointments.agenda(session, actor, staff.department_id, now, week)
    shown: dict[str, None] = {}  # ordered, once each
    if any(r.kind == desk.Kind.CASE for r in found.rows):
        shown |= dict.fromkeys(("company", "project_name"))
    if agenda.bookings:
        shown |= dict.fromkeys(("company", "contact_name"))
    page = render_text(
        "web/desk.html.j2",
        staff=staff,
        rows=found.rows,
        totals=found.totals,
        onward={k: _link(filters, k, after, week) for k, after in found.more.items()},
        first=_link(filters, filters.kind, None, week) if filters.after and filters.kind else None,
        filters=filters,
        kinds=labels("desk_kinds"),
        statuses=_status_options(),
        status_label=status_label,
        exports=_exports(actor),
        admin=policy.can(actor, Right.READ_AUDIT),
        stats=stats.scope_of(actor) is not None,
        today=now.astimezone(CHINA).date(),
        agenda=agenda,
        agenda_other=_link(filters, filters.kind, filters.after, not week),
    )
    return page, tuple(shown)


def _link(
    filters: desk.Filters, kind: desk.Kind | None, after: int | None, week: bool = False
) -> str:
    """The desk's address for a page of one kind, keeping the status and the search (and
    the week's appointments when they are asked for)."""
    fields = {"kind": str(kind or ""), "status": filters.status or "", "q": filters.search}
    if after is not None:
        fields["after"] = str(after)
    if week:
        fields["agenda"] = "week"
    return "desk?" + urlencode({k: v for k, v in fields.items() if v})


def _exports(actor: Actor) -> list[str]:
    allowed = []
    if desk.may_export_ledger(actor):
        allowed.append("ledger")
    if desk.may_export_cases(actor):
        allowed.append("cases")
    return allowed


async def download_export(request: web.Request) -> web.Response:
    """GET desk/export/{what}.xlsx: the 台账 or the case list, for the roles allowed."""
    channel = channel_of(request)
    signed_in = await channel.staff.check(request.cookies.get(STAFF_COOKIE))
    if signed_in is None:
        return login_page(channel)
    what = request.match_info["what"]
    actor = Actor.of_staff(signed_in.staff)
    if what not in _exports(actor):
        log.info("web export refused staff=%s what=%s", signed_in.staff.id, what)
        return _page(render_text("web/not_allowed.html.j2", root=_root(channel)), status=403)
    db = channel.app.services.db
    if what == "ledger":
        document, _ = await export.ledger_document(db)
        content, name = document.content, document.name
    else:
        content = await _case_list(db)
        name = f"{label('key_projects', 'cases_sheet')}.xlsx"
    note = audit.Note(f"export.{what}", fields=audit.CASES_EXPORT_FIELDS if what == "cases" else ())
    await _audit(channel, request, actor, note)
    log.info("web export staff=%s what=%s", signed_in.staff.id, what)
    return _attachment(content, name)


async def _audit(channel: WebChannel, request: web.Request, actor: Actor, note: audit.Note) -> None:
    """One 操作日志 record of a page or export served, with the client's address."""
    entry = audit.entry(actor, note, WEB_CHANNEL, channel.client_ip(request))
    await audit.record(channel.app.services.db, entry)


async def _case_list(db: Database) -> bytes:
    """The case list as xlsx, streamed to a temporary file batch by batch, then read once."""
    with tempfile.TemporaryDirectory(prefix="bdb-export-") as folder:
        path = Path(folder) / "cases.xlsx"
        await export.export_cases(db, path, export.Format.XLSX)
        return await asyncio.to_thread(path.read_bytes)


def _attachment(content: bytes, name: str) -> web.Response:
    disposition = f"attachment; filename*=UTF-8''{quote(name)}"
    return web.Response(
        body=content, content_type=export.XLSX_MIME, headers={"Content-Disposition": disposition}
    )


def add_staff_routes(web_app: web.Application, base: str) -> None:
    web_app.router.add_post(f"{base}/staff/bind", bind)
    web_app.router.add_post(f"{base}/staff/unbind", unbind)
    web_app.router.add_get(f"{base}/desk", work_list)
    web_app.router.add_get(f"{base}/desk/export/{{what}}.xlsx", download_export)
