"""From an incoming event to the handler that answers it; the one entry point of the core."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from structlog.contextvars import bound_contextvars

from chat.callbacks import CallbackData, Prompt
from chat.events import ChatUser, Incoming, Kind, Reply
from dialogs.cleaning import clean, clean_data
from dialogs.engine import DIALOG_BUTTONS, DialogButton, DialogPress, Draft, Expired
from dialogs.fit import fit
from dialogs.texts import render
from domain import audit
from domain.policy import Actor
from handlers import (
    agencies,
    agent_work,
    announcements,
    applicant,
    bad_ratings,
    bookings,
    casework,
    consult,
    devices,
    followup,
    home,
    key_projects,
    meetings,
    staff,
    supplement,
    viewed,
    visits,
)
from handlers.context import Context, Services
from handlers.menu import MenuPress, expired, menu_buttons, with_menu
from handlers.routes import Route, Routes
from services import metrics
from storage import applicants, roster
from storage.db import DatabaseUnavailable
from storage.ratelimit import FloodGuard, Verdict
from storage.state import Flooded, StateUnavailable, Window

log = logging.getLogger(__name__)
MAX_TEXT = 4000  # longer than any answer we ask for; Telegram itself caps at 4096
MAX_INPUT = 20_000  # refused before any other work, even inside a dialog
SHOWN = "shown"  # state key: the buttons of the last answer, which typed labels may press
UNAVAILABLE = (
    StateUnavailable,
    DatabaseUnavailable,
    OperationalError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
)

# Every feature's route table; the router adds only the cross-cutting work.
ROUTES = (
    home.routes,
    applicant.routes,
    consult.routes,
    announcements.routes,
    supplement.routes,
    followup.routes,
    bad_ratings.routes,
    staff.routes,
    casework.routes,
    key_projects.routes,
    devices.routes,
    bookings.routes,
    agencies.routes,
    agent_work.routes,
    viewed.routes,
    visits.routes,
    meetings.routes,
)


def route_table(tables: tuple[Routes, ...] = ROUTES) -> Routes:
    table = Routes("all")
    for routes in tables:
        table.include(routes)
    return table


class Router:
    """Serialises each conversation, loads its state, resolves who is asking where a route
    wants it, dispatches through the route tables, saves the state."""

    def __init__(self, services: Services, routes: Routes | None = None) -> None:
        self.services = services
        self.routes = routes or route_table()
        # Console chats acting as a staff member without touching that person's binding.
        self.acting_as: dict[str, int] = {}

    async def handle(
        self,
        event: Incoming,
        flood: FloodGuard | None = None,
        opened: Callable[[], object] | None = None,
        also: Sequence[Window] = (),
    ) -> list[Reply]:
        """Answer one update; its ids are bound to every log line meanwhile, and it is counted.

        With `flood`, the update is counted against the sender's flood window first — in the
        same Redis round trip as the conversation's lock — and one over the limit is answered
        with the warning once, then with nothing. `opened` is called once the conversation is
        open (locked and loaded): a channel times its "typing…" from there, not from the wait
        for a Redis connection that a burst queues on. `also` are further windows counted in
        that round trip first (a web visitor's address); over one of them, `Flooded` is
        raised to the caller, which answers in its own way."""
        event = entering(event)
        channel = event.user.channel
        started = time.perf_counter()
        with bound_contextvars(
            update=uuid.uuid4().hex[:12], channel=channel, chat=event.user.chat_id
        ):
            replies, outcome = await self._handle(event, flood, opened, also)
            log.debug("update handled kind=%s outcome=%s", event.kind, outcome)
        metrics.UPDATES.labels(channel, outcome).inc()
        metrics.UPDATE_SECONDS.labels(channel).observe(time.perf_counter() - started)
        return replies

    async def _handle(
        self,
        event: Incoming,
        flood: FloodGuard | None,
        opened: Callable[[], object] | None,
        also: Sequence[Window],
    ) -> tuple[list[Reply], str]:
        key = event.user.key
        try:
            async with self.services.state.conversation(key, flood, also) as state:
                if opened is not None:
                    opened()
                ctx = Context(event=event, services=self.services, state=state)
                if key in self.acting_as:
                    await self._identify(ctx)
                replies = fit(await self._dispatch(ctx))  # every reply fits the channel
                remember_buttons(state, replies)
                return replies, "ok"
        except Flooded as exc:
            if any(exc.guard is guard for guard, _ in also):
                metrics.UPDATES.labels(event.user.channel, "limited").inc()
                raise
            if exc.verdict is Verdict.WARN:
                log.info("flood guard engaged user=%s", key)
                return [Reply(render("common/flood.j2"))], "flooded"
            return [], "flooded"
        except UNAVAILABLE as exc:
            log.warning("service unavailable user=%s error=%s", key, type(exc).__name__)
        except DBAPIError as exc:
            log.error("database error user=%s error=%s", key, type(exc).__name__)
        except Exception:
            log.exception("unexpected error user=%s kind=%s", key, event.kind)
        return [Reply(render("common/busy.j2"))], "busy"

    async def _dispatch(self, ctx: Context) -> list[Reply]:
        event = ctx.event
        if event.kind == Kind.UNSUPPORTED:
            return [with_menu("common/unsupported.j2")]
        if event.kind == Kind.BUTTON:
            return await self._button(ctx, event.data)
        if event.kind == Kind.FILE:
            prompt = Prompt.parse(str(ctx.state.get("mode", "")))
            route = self.routes.files.get(type(prompt)) if prompt else None
            if route is not None and event.file is not None:
                return await self._run(ctx, route, prompt, event.file)
            return [with_menu("common/file_not_expected.j2")]
        if len(event.text) > MAX_INPUT:
            return [with_menu("common/too_long.j2", length=len(event.text), limit=MAX_TEXT)]
        text = event.text
        if not text:
            return [with_menu("common/empty.j2")]
        pressed = typed_button(ctx.state, text)
        if pressed is not None:
            return await self._button(ctx, pressed)
        if len(text) > MAX_TEXT and "draft" not in ctx.state:
            return [with_menu("common/too_long.j2", length=len(text), limit=MAX_TEXT)]
        if text.startswith("/"):
            return await self._command(ctx, text)
        if "draft" in ctx.state:
            return await self._dialog_text(ctx, text)
        prompt = Prompt.parse(str(ctx.state.pop("mode", "")))
        route = self.routes.prompts.get(type(prompt)) if prompt else None
        if route is not None:
            return await self._run(ctx, route, prompt, text)
        if self.routes.text is not None:
            return await self._run(ctx, self.routes.text, text)
        return [with_menu("common/free_text.j2")]

    async def _run(self, ctx: Context, route: Route, *args: object) -> list[Reply]:
        """Resolve the sender once where the route asks, refuse non-staff on staff routes."""
        await self._identify(ctx, route.actor, route.applicant)
        if route.refusal is not None and ctx.staff is None:
            return [Reply(render(route.refusal))]
        if route.actor and ctx.actor is not None:  # every staff update: one 操作日志 record
            ctx.extra[audit.DEFAULT] = generic_note(ctx, args)
        if route.actor and ctx.actor is not None and not ctx.actor.in_contract:
            replies = [Reply(render("agencies/contract_ended.j2"))]  # an agent out of contract
        else:
            replies = await route.handler(ctx, *route.arguments(ctx, args))
        await self._audited(ctx)
        return replies

    async def _audited(self, ctx: Context) -> None:
        """The update's record, unless its action's transaction holds it already: a view (or
        a refused attempt) is recorded before its screen is sent — no record, no screen."""
        if not ctx.audits or ctx.extra.get(audit.WRITTEN):
            return
        found = ctx.extra.get(audit.NOTE)
        done = found if isinstance(found, audit.Note) else ctx.extra[audit.DEFAULT]
        await audit.record(self.services.db, ctx.audit_entry(done))

    async def _command(self, ctx: Context, text: str) -> list[Reply]:
        name, _, argument = text[1:].partition(" ")
        route = self.routes.commands.get(name.split("@")[0].lower())
        if route is None:
            return [with_menu("common/unknown_command.j2")]
        return await self._run(ctx, route, argument.strip())

    async def _identify(self, ctx: Context, staff: bool = True, applicant: bool = False) -> None:
        """Look up who is asking, once for the whole update and in one session: the staff
        member behind this chat (one Actor), and where asked the applicant behind it."""
        staff = staff and not ctx.identified
        applicant = applicant and not ctx.applicant_known
        if not (staff or applicant):
            return
        user = ctx.event.user
        acting = self.acting_as.get(user.key)
        async with self.services.db.sessions() as session:
            if staff and acting is not None:
                ctx.staff = await roster.active_staff(session, acting)
            elif staff:
                ctx.staff = await roster.staff_by_chat(session, user.channel, user.chat_id)
            if applicant:
                ctx.applicant = await applicants.find(session, user.channel, user.chat_id)
                ctx.applicant_known = True
        if staff:
            ctx.actor = Actor.of_staff(ctx.staff) if ctx.staff is not None else None
            ctx.identified = True

    def act_as(self, user: ChatUser, staff_id: int) -> None:
        """Let this chat act as a staff member (the console's --as staff:NAME)."""
        self.acting_as[user.key] = staff_id

    async def expects_file(self, user: ChatUser) -> bool:
        """Whether an upload is awaited from this user; channels ask before downloading."""
        state = await self.services.state.load(user.key)
        return type(Prompt.parse(str(state.get("mode", "")))) in self.routes.files

    async def _button(self, ctx: Context, data: str) -> list[Reply]:
        pressed = CallbackData.parse(data)
        if isinstance(pressed, MenuPress):
            menu = self.routes.menu.get(pressed.action)
            return await self._run(ctx, menu, "") if menu else [expired()]
        if isinstance(pressed, DIALOG_BUTTONS):
            return await self._dialog_button(ctx, pressed)
        route = self.routes.buttons.get(type(pressed)) if pressed else None
        if route is None:
            return [expired()]
        return await self._run(ctx, route, pressed)

    async def _dialog_text(self, ctx: Context, text: str) -> list[Reply]:
        draft = Draft.load(ctx.state["draft"])
        step = self.services.engine.on_text(draft, text)
        replies = await self._prepared(ctx, draft, step.replies)
        ctx.state["draft"] = draft.dump()
        return await self._with_review(ctx, draft, replies)

    async def _dialog_button(self, ctx: Context, pressed: DialogButton) -> list[Reply]:
        saved = ctx.state.get("draft")
        if saved is None:
            return await self._stale_dialog_button(ctx, pressed)
        draft = Draft.load(saved)
        try:
            step = self.services.engine.on_button(draft, pressed)
        except Expired:
            return [expired()]
        form = self.routes.forms[draft.form]
        if step.submit is not None:
            await self._identify(ctx, form.actor, form.applicant)
            if form.actor and ctx.actor is not None:  # a staff member's form: one record
                ctx.extra[audit.DEFAULT] = audit.Note(f"form:{draft.form}")
            replies = await form.submit(ctx, draft.token, step.submit)
            await self._audited(ctx)
            if not ctx.extra.get("keep_draft"):
                ctx.state.pop("draft", None)
            return replies
        if step.finished:
            ctx.state.pop("draft", None)
            replies = step.replies
            if step.stopped and form.stopped is not None:
                replies = [*replies, *await form.stopped(ctx)]
            return [*replies[:-1], _with_menu_buttons(replies[-1])]
        replies = await self._prepared(ctx, draft, step.replies)
        ctx.state["draft"] = draft.dump()
        return await self._with_review(ctx, draft, replies)

    async def _prepared(self, ctx: Context, draft: Draft, replies: list[Reply]) -> list[Reply]:
        """A form with options of its own looks them up after each step and, where they
        changed, its screen is shown again with them."""
        prepare = self.routes.forms[draft.form].prepare
        if prepare is None or not await prepare(ctx, draft):
            return replies
        return [*replies[:-1], self.services.engine.show(draft)]

    async def _with_review(self, ctx: Context, draft: Draft, replies: list[Reply]) -> list[Reply]:
        """A form's review page may add to itself (an announcement: how many it would reach)."""
        review = self.routes.forms[draft.form].review
        if review is not None and draft.current is None:
            return [*replies, await review(ctx, draft)]
        return replies

    async def _stale_dialog_button(self, ctx: Context, pressed: DialogButton) -> list[Reply]:
        """A second press of 提交 finds what the first one made."""
        if isinstance(pressed, DialogPress) and pressed.action == "submit":
            for form in self.routes.forms.values():
                if form.resubmit is None:
                    continue
                await self._identify(ctx, form.actor, form.applicant)
                found = await form.resubmit(ctx, pressed.token)
                if found is not None:
                    return found
        return [expired()]


def generic_note(ctx: Context, args: tuple[object, ...]) -> audit.Note:
    """What a staff update did, from the route alone: the button's or prompt's kind and its
    case number or key project, else the command's name."""
    first = args[0] if args else None
    if isinstance(first, (CallbackData, Prompt)):
        number, project = getattr(first, "number", None), getattr(first, "project_id", None)
        return audit.Note(
            f"{'button' if isinstance(first, CallbackData) else 'text'}:{type(first).__name__}",
            case_number=number if isinstance(number, str) else None,
            key_project_id=project if isinstance(project, int) else None,
        )
    event = ctx.event
    if event.kind == Kind.BUTTON:
        return audit.Note(f"menu:{event.data[:40]}")
    return audit.Note(f"command:{event.text.split(maxsplit=1)[0][:40] if event.text else ''}")


def entering(event: Incoming) -> Incoming:
    """The event as the core sees it: every text cleaned once, here (dialogs/cleaning.py)."""
    user = event.user
    if user.display_name is not None:
        name = clean(user.display_name[:MAX_INPUT], single_line=True)[:120]
        user = dataclasses.replace(user, display_name=name or None)
    text = event.text if len(event.text) > MAX_INPUT else clean(event.text)
    file = event.file
    if file is not None:
        file = dataclasses.replace(file, name=clean(file.name[:500], single_line=True))
    return dataclasses.replace(
        event, user=user, text=text, data=clean_data(event.data[:MAX_INPUT]), file=file
    )


def remember_buttons(state: dict[str, Any], replies: list[Reply]) -> None:
    """Keep the newest answer's buttons, so typing one's label (or number) presses it."""
    shown = [[button.label, button.data] for reply in replies for button in reply.all_buttons()]
    if shown:
        state[SHOWN] = shown
    else:
        state.pop(SHOWN, None)


def typed_button(state: dict[str, Any], text: str) -> str | None:
    """The data of the shown button whose label (or 1-based number) was typed, if any."""
    shown = state.get(SHOWN) or []
    if len(text) <= 3 and text.isdecimal() and 1 <= int(text) <= len(shown):
        return str(shown[int(text) - 1][1])
    wanted = clean(text, fold=True)
    for label, data in shown:
        if wanted == clean(label, fold=True):
            return str(data)
    return None


def _with_menu_buttons(reply: Reply) -> Reply:
    if not reply.buttons:
        reply.buttons = menu_buttons()
    return reply
