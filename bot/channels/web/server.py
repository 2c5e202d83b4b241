"""The web chat server (`bangdaiban web`): the page, its websocket, uploads and downloads.

It only translates: every message goes through the same core router as the other channels.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from bot.app import App, build_app
from bot.channels.signed import is_signed
from bot.channels.web import receiving, render
from bot.channels.web.audit_pages import add_admin_routes
from bot.channels.web.channel import CHANNEL_KEY, WebChannel, channel_of
from bot.channels.web.client_errors import quiet_client_mistakes
from bot.channels.web.delivery import CHANNEL, NoticeDelivery
from bot.channels.web.desk import (
    BIND_COMMAND,
    add_staff_routes,
    open_target,
    staff_page,
    still_signed_in,
)
from bot.channels.web.history import HistoryWriter
from bot.channels.web.identity import Identity, load_secret
from bot.channels.web.rating_page import add_rating_routes
from bot.channels.web.staff_session import StaffSessions
from bot.channels.web.stats import add_stats_routes
from bot.config import Settings
from chat.events import Button, ChatUser, Incoming, Kind, UploadedFile
from dialogs.texts import labels
from dialogs.texts import render as render_text
from domain import audit
from domain import cases as life
from domain.policy import Actor
from handlers import applicant
from services import documents
from storage import applicants, cases, files, web_history
from storage.ratelimit import FloodGuard, MemoryFloodGuard, RedisFloodGuard, Verdict
from storage.state import Flooded

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
FORMATS = ("docx", "pdf")
WS_MESSAGE_LIMIT = 64 * 1024
# Compressed on the wire (a phone on a slow network): the chat page and its CSS and JS.
# Not /desk: it reflects a search term beside case data (BREACH).
COMPRESSED_FILES = (".css", ".js")
CSRF_HEADER = "X-CSRF-Token"
START_COMMAND = "/start"


# -- request handlers ---------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    channel = channel_of(request)
    renewed: list[tuple[str, str]] = []
    signed_in = await channel.staff.resolve(request, renewed)
    if signed_in is not None:
        return staff_page(channel, request, signed_in, renewed)
    chat_id = channel.chat_id(request)
    fresh = chat_id is None
    if chat_id is None:
        chat_id = channel.identity.new_chat_id()
    source = request.query.get("src", "")
    if source in labels("sources"):
        async with channel.app.services.db.transaction() as session:
            await applicants.tag_source(session, CHANNEL, chat_id, source)
    # A first visit shows the greeting at once (on slow 3G the socket costs seconds more); the
    # page starts the chat when its socket opens and the real answer takes the greeting's place.
    greeting = render.bot_message(*_greeting()) if fresh else None
    page = render_text(
        "web/index.html.j2",
        csrf=channel.identity.csrf_token(chat_id),
        staff=None,
        greeting=greeting,
        elder=channel.elder(request),
    )
    response = web.Response(text=page, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    _compress(response)
    if fresh:
        channel.set_cookie(request, response, chat_id)
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    channel = channel_of(request)
    if not channel.origin_ok(request):
        log.info("web socket refused: origin")
        raise web.HTTPForbidden(text="origin")
    chat_id, signed_in = await channel.visitor(request)
    if chat_id is None:
        raise web.HTTPForbidden(text="cookie")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=WS_MESSAGE_LIMIT)
    await ws.prepare(request)
    await channel.history.flush()
    async with channel.app.services.db.transaction() as session:
        await web_history.prune(session, chat_id)
        history = await web_history.recent(session, chat_id)
    try:
        await ws.send_json({"type": "history", "messages": history})
    except ConnectionError:  # the page went away while it connected: nothing to serve
        return ws
    device = signed_in.device_id if signed_in else None
    channel.hub.add(chat_id, ws, device)  # wakes the notice delivery for this chat
    ip = channel.client_ip(request)
    address = (channel.ip_guard, ip_key(ip))
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            if signed_in is not None and not await still_signed_in(channel, signed_in):
                await ws.send_json({"type": "signed_out"})  # the page reloads: login or chat
                break
            incoming, echo = _incoming(chat_id, message.data, ip)
            command, _, code = incoming.text.partition(" ") if incoming else ("", "", "")
            if incoming is None or command.lower() == BIND_COMMAND:
                # Not a conversation: its address is counted here, not in the lock+load.
                if await channel.ip_guard.hit(address[1]) is not Verdict.ALLOW:
                    await ws.send_json({"type": "limited"})
                elif incoming is not None:  # binding needs a cookie: the page posts the code
                    await ws.send_json({"type": "bind", "code": code.strip()[:64]})
                continue
            try:  # the address's window is counted in the conversation's own round trip
                await channel.converse(chat_id, incoming, echo, [address], sender=ws)
            except Flooded:
                await ws.send_json({"type": "limited"})
    finally:
        channel.hub.remove(chat_id, ws)
    return ws


def _greeting() -> tuple[str, list[list[Button]]]:
    reply = applicant.greeting()
    return reply.text, reply.buttons


def _incoming(chat_id: str, raw: str, client: str) -> tuple[Incoming | None, str | None]:
    """A socket message as the core's event (with the sender's address, for the 操作日志),
    and the text to echo; None if malformed."""
    incoming, echo = _parsed(chat_id, raw)
    return (dataclasses.replace(incoming, client=client) if incoming else None), echo


def _parsed(chat_id: str, raw: str) -> tuple[Incoming | None, str | None]:
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    user = ChatUser(CHANNEL, chat_id)
    if data.get("type") == "start":  # the page's greeting: no visitor bubble for it
        return Incoming.say(user, START_COMMAND), None
    if data.get("type") == "text" and isinstance(data.get("text"), str):
        return Incoming.say(user, data["text"]), data["text"]
    if data.get("type") == "open" and isinstance(data.get("target"), str):
        opened = open_target(data["target"])  # only screens that show, never a step
        return (Incoming.press(user, opened), None) if opened else (None, None)
    if data.get("type") == "button" and isinstance(data.get("data"), str):
        pressed = str(data.get("label") or "")[: render.LABEL_LIMIT]
        return Incoming.press(user, data["data"][:256]), pressed or None
    return None, None


def ip_key(ip: str) -> str:
    """The per-address window's key: requests and socket messages count in one window."""
    return f"webip:{ip}"


def _visitor_for_post(request: web.Request) -> str:
    """The chat of a POST that carries its CSRF token; 403 otherwise."""
    channel = channel_of(request)
    chat_id = channel.chat_id(request)
    if chat_id is None or not channel.identity.csrf_ok(chat_id, request.headers.get(CSRF_HEADER)):
        log.info("web post refused: csrf")
        raise web.HTTPForbidden(text="csrf")
    if "Origin" in request.headers and not channel.origin_ok(request):
        raise web.HTTPForbidden(text="origin")
    return chat_id


async def upload(request: web.Request) -> web.Response:
    """补正 materials by multipart POST: refused before the body is read unless the chat is at
    an upload step; streamed to disk within the size cap; the core checks and answers."""
    channel = channel_of(request)
    chat_id = _visitor_for_post(request)
    reader = receiving.multipart(request)
    user = ChatUser(CHANNEL, chat_id)
    if not await channel.app.router.expects_file(user):
        await channel.converse(chat_id, Incoming(user, Kind.FILE), None)  # the core says why
        raise web.HTTPConflict(text="no upload is expected now")
    part = await receiving.file_part(reader)
    limit = channel.app.services.uploads.caps.max_bytes
    root = channel.app.services.files_dir
    received = await receiving.receive(part, limit, request.content_length, root)
    file = UploadedFile(received.name, received.mime, received.size, path=received.path)
    try:  # over the cap, the core refuses it by its size, with the limit stated
        incoming = Incoming(user, Kind.FILE, file=file, client=channel.client_ip(request))
        await channel.converse(chat_id, incoming, f"📎 {file.name}")
    finally:
        receiving.discard(received)
    if received.path is None:
        raise web.HTTPRequestEntityTooLarge(limit, received.size, text="file too large")
    return web.json_response({"ok": True})


async def download_form(request: web.Request) -> web.Response:
    """The case's printable form, for the chat that owns (or bound) the case, or for a
    signed-in staff browser whose role may see the case."""
    channel = channel_of(request)
    chat_id, signed_in = await channel.visitor(request)
    number, fmt = request.match_info["number"], request.match_info["fmt"]
    if chat_id is None or fmt not in FORMATS:
        raise web.HTTPNotFound()
    services = channel.app.services
    async with services.db.sessions() as session:
        if signed_in is not None:
            actor = Actor.of_staff(signed_in.staff)
            case = await life.visible_to_staff(session, number, actor)
        else:
            applicant = await applicants.find(session, CHANNEL, chat_id)
            case = await cases.for_applicant(session, applicant.id, number) if applicant else None
    if case is None:
        raise web.HTTPNotFound()
    document = await documents.application_form(services, case, fmt)
    if document is None:
        raise web.HTTPNotFound()
    holder = Actor.of_staff(signed_in.staff) if signed_in is not None else None
    client = channel.client_ip(request)  # recorded before it is sent: no record, no file
    chat = (CHANNEL, chat_id)
    await audit.download(services.db, chat, "download.form", case.number, CHANNEL, client, holder)
    return _attachment(document.content, document.name, document.mime)


async def download_file(request: web.Request) -> web.Response:
    channel = channel_of(request)
    chat_id = channel.chat_id(request)
    spec = channel.identity.file_of(chat_id, request.match_info["token"]) if chat_id else None
    if spec is None:
        raise web.HTTPNotFound()
    root = channel.app.services.files_dir
    try:
        content = await asyncio.to_thread(files.read, root, str(spec["h"]))
    except OSError:
        raise web.HTTPNotFound() from None
    number = str(spec["k"]) if spec.get("k") else None
    client = channel.client_ip(request)  # recorded before it is sent: no record, no file
    db = channel.app.services.db
    await audit.download(db, (CHANNEL, str(chat_id)), "download.file", number, CHANNEL, client)
    return _attachment(content, str(spec["n"]), str(spec["m"]))


def _attachment(content: bytes, name: str, mime: str) -> web.Response:
    disposition = f"attachment; filename*=UTF-8''{quote(name)}"
    return web.Response(
        body=content, content_type=mime, headers={"Content-Disposition": disposition}
    )


# -- the application ----------------------------------------------------------------------


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Per-IP rate limit (not on validly signed callbacks: those all come from the sender's
    few addresses) and security headers on every response."""
    channel = channel_of(request)
    if not is_signed(request) and (
        await channel.ip_guard.hit(ip_key(channel.client_ip(request))) is not Verdict.ALLOW
    ):
        response: web.StreamResponse = web.json_response({"error": "rate_limited"}, status=429)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _security_headers(request, exc)
            raise
    if not response.prepared:
        _security_headers(request, response)
        if isinstance(response, web.FileResponse) and request.path.endswith(COMPRESSED_FILES):
            _compress(response)
    return response


def _compress(response: web.StreamResponse) -> None:
    response.enable_compression()  # gzip/deflate only if the browser accepts it
    response.headers["Vary"] = "Accept-Encoding"


def build_guards(settings: Settings, app: App) -> tuple[FloodGuard, FloodGuard]:
    """(per chat, per IP), in Redis when the state store is there."""
    state = app.services.state
    chat_limit, chat_window = settings.flood_limit, settings.flood_window_seconds
    ip_limit, ip_window = settings.web_ip_limit, settings.web_ip_window_seconds
    if state.redis is not None:
        return (
            RedisFloodGuard(state.redis, chat_limit, chat_window, state.prefix),
            RedisFloodGuard(state.redis, ip_limit, ip_window, state.prefix),
        )
    return MemoryFloodGuard(chat_limit, chat_window), MemoryFloodGuard(ip_limit, ip_window)


def build_web_app(
    app: App, settings: Settings, poll_interval: float | None = None
) -> web.Application:
    """The web chat as an aiohttp application (other HTTP channels may add their routes)."""
    quiet_client_mistakes()
    chat_guard, ip_guard = build_guards(settings, app)
    history = HistoryWriter(app.services.db)
    secret = load_secret(settings)
    identity = Identity(secret)
    sessions = StaffSessions(secret, app.services.db, settings.web_staff_session_days)
    channel = WebChannel(app, settings, identity, chat_guard, ip_guard, history, sessions)
    receiving.prepare(app.services.files_dir)
    quiet_client_mistakes()
    # Uploads stream past this (receiving.py); no other request needs more than a form's worth.
    web_app = web.Application(middlewares=[guard], client_max_size=1024 * 1024)
    web_app[CHANNEL_KEY] = channel
    base = settings.web_base_path
    if base:
        web_app.router.add_get(base, _to_slash)
    web_app.router.add_get(f"{base}/", index)
    web_app.router.add_get(f"{base}/ws", websocket)
    web_app.router.add_post(f"{base}/upload", upload)
    web_app.router.add_get(f"{base}/form/{{number}}.{{fmt}}", download_form)
    web_app.router.add_get(f"{base}/file/{{token}}", download_file)
    web_app.router.add_static(f"{base}/static", STATIC)
    add_staff_routes(web_app, base)
    add_stats_routes(web_app, base)
    add_admin_routes(web_app, base)
    add_rating_routes(web_app, base)
    poll = settings.web_poll_seconds if poll_interval is None else poll_interval
    delivery = NoticeDelivery(app.services.db, channel.hub, channel.notice_payload, poll)
    stop = asyncio.Event()

    async def deliver(_: web.Application) -> Any:
        tasks = [asyncio.create_task(delivery.run(stop)), asyncio.create_task(history.run(stop))]
        yield
        stop.set()
        await channel.hub.close_all()
        await asyncio.gather(*tasks)

    web_app.cleanup_ctx.append(deliver)
    return web_app


async def _to_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{request.path}/")


async def serve(
    settings: Settings,
    background: Callable[[Settings, App], AbstractAsyncContextManager[None]],
    announce: Any = print,
    beside: Sequence[Callable[[web.Application, App, Settings, str], None]] = (),
) -> None:
    """`bangdaiban web`: the web chat, the WeChat callback when WECHAT_TOKEN is set, and
    `background` beside it (bot/worker.py: with RUN_WORKER delivery and the scheduler),
    until SIGTERM/SIGINT."""
    from bot import ops

    app = await build_app(settings)
    web_app = build_web_app(app, settings)
    if settings.wechat_token:
        from bot.channels.wechat import setup_wechat

        setup_wechat(web_app, app, settings, prefix=settings.web_base_path)
    for add in beside:  # channels living on this server (WeCom: its callback and OAuth)
        add(web_app, app, settings, settings.web_base_path)
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = ops.stop_on_signals()
    watch = asyncio.create_task(ops.watch_calendar(stop))
    try:
        async with ops.serving(settings, app), background(settings, app):
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
            address = f"http://{settings.web_host}:{settings.web_port}{settings.web_base_path}/"
            announce(f"Web chat: {address}")
            if settings.wechat_token:
                announce(f"WeChat callback: {address}wechat")
            if settings.wecom_corp_id:
                announce(f"WeCom callback: {address}wecom")
            await stop.wait()
    finally:
        stop.set()
        await watch
        await runner.cleanup()
        await app.close()
