"""From an incoming event to the handler that answers it; the one entry point of the core."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from structlog.contextvars import bound_contextvars

from chat.events import ChatUser, Incoming, Kind, Reply
from dialogs.cleaning import clean, clean_data
from dialogs.engine import Draft, Expired
from dialogs.fit import fit
from dialogs.texts import render
from handlers import (
    announcements,
    applicant,
    casework,
    followup,
    key_projects,
    staff,
    supplement,
)
from handlers.context import Context, Services
from handlers.menu import MENU_PREFIX, expired, menu_buttons, with_menu
from services import metrics
from storage import applicants, cases, roster
from storage.db import DatabaseUnavailable
from storage.state import StateUnavailable

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

Handler = Callable[[Context, str], Awaitable[list[Reply]]]
# Commands whose answer depends on the sender's role.
STAFF_AWARE = frozenset({"start", "help", "duty", "open", "reassign", "inbox", "broadcast"})


class Router:
    """Serialises each conversation, loads its state, dispatches, saves the state."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.commands: dict[str, Handler] = {
            "start": self._start,
            "apply": lambda ctx, _: applicant.start_application(ctx),
            "cases": lambda ctx, _: applicant.list_cases(ctx),
            "status": self._status,
            "cancel": self._cancel,
            "help": self._help,
            "menu": lambda ctx, _: applicant.menu(ctx),
            "contact": lambda ctx, _: applicant.contacts(ctx),
            "ask": self._ask,
            "subscribe": lambda ctx, _: announcements.topics(ctx),
            "news": lambda ctx, _: announcements.recent(ctx),
            "broadcast": lambda ctx, _: _now(announcements.compose(ctx)),
            "unsubscribe": lambda ctx, _: applicant.set_subscription(ctx, False),
            "bind": staff.bind,
            "duty": lambda ctx, _: staff.duty(ctx),
            "open": lambda ctx, _: staff.open_list(ctx),
            "reassign": staff.reassign,
            "inbox": lambda ctx, _: casework.inbox(ctx),
        }
        self.menu: dict[str, Handler] = {
            "apply": self.commands["apply"],
            "resume": lambda ctx, _: _now(applicant.resume(ctx)),
            "restart": lambda ctx, _: applicant.start_application(ctx, restart=True),
            "cases": self.commands["cases"],
            "contact": self.commands["contact"],
            "ask": self._ask,
            "menu": self.commands["menu"],
            "subscribe": self.commands["subscribe"],
            "news": self.commands["news"],
            "unsubscribe": self.commands["unsubscribe"],
        }
        self.case_actions: dict[str, Handler] = {
            "open": applicant.show_case,
            "form": applicant.send_form,
            "withdraw": applicant.ask_withdraw,
            "withdraw_yes": applicant.withdraw,
            "page": applicant.list_cases,
        }
        self.commands.update(key_projects.commands())
        # Console chats acting as a staff member without touching that person's binding.
        self.acting_as: dict[str, int] = {}

    async def handle(self, event: Incoming) -> list[Reply]:
        """Answer one update; its ids are bound to every log line meanwhile, and it is counted."""
        event = entering(event)
        channel = event.user.channel
        started = time.perf_counter()
        with bound_contextvars(
            update=uuid.uuid4().hex[:12], channel=channel, chat=event.user.chat_id
        ):
            replies, outcome = await self._handle(event)
            log.debug("update handled kind=%s outcome=%s", event.kind, outcome)
        metrics.UPDATES.labels(channel, outcome).inc()
        metrics.UPDATE_SECONDS.labels(channel).observe(time.perf_counter() - started)
        return replies

    async def _handle(self, event: Incoming) -> tuple[list[Reply], str]:
        key = event.user.key
        try:
            async with self.services.state.conversation(key) as state:
                ctx = Context(event=event, services=self.services, state=state)
                if key in self.acting_as:
                    await self._identify_staff(ctx)
                replies = fit(await self._dispatch(ctx))  # every reply fits the channel
                remember_buttons(state, replies)
                return replies, "ok"
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
            mode, _, number = str(ctx.state.get("mode", "")).partition(":")
            if mode == "upload" and event.file is not None:
                return await supplement.receive(ctx, number, event.file)
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
        mode, _, target = str(ctx.state.pop("mode", "")).partition(":")
        if mode == "reply" and target.isdigit():
            await self._identify_staff(ctx)
            if ctx.staff is not None:
                return await staff.send_reply(ctx, int(target), text)
        if mode.startswith("case_"):
            await self._identify_staff(ctx)
            return await casework.on_text(ctx, mode, target, text)
        if mode.startswith("kp_"):
            handled = await key_projects.on_text(ctx, mode, target, text)
            if handled is not None:
                return handled
        if mode == "comment":
            return await followup.comment(ctx, target, text)
        if mode == "follow" and target.isdigit() and self.services.consultation is not None:
            return await self.services.consultation.followup(ctx, int(target), text)
        return await self._free_text(ctx, text)

    async def _command(self, ctx: Context, text: str) -> list[Reply]:
        name, _, argument = text[1:].partition(" ")
        name = name.split("@")[0].lower()
        handler = self.commands.get(name)
        if handler is None:
            return [with_menu("common/unknown_command.j2")]
        if name in STAFF_AWARE:
            await self._identify_staff(ctx)
        return await handler(ctx, argument.strip())

    async def _identify_staff(self, ctx: Context) -> None:
        """Look up the staff member behind this chat; only where an action depends on it."""
        user = ctx.event.user
        acting = self.acting_as.get(user.key)
        async with self.services.db.sessions() as session:
            if acting is not None:
                ctx.staff = await roster.active_staff(session, acting)
            else:
                ctx.staff = await roster.staff_by_chat(session, user.channel, user.chat_id)

    def act_as(self, user: ChatUser, staff_id: int) -> None:
        """Let this chat act as a staff member (the console's --as staff:NAME)."""
        self.acting_as[user.key] = staff_id

    async def expects_file(self, user: ChatUser) -> bool:
        """Whether an upload is awaited from this user; channels ask before downloading."""
        state = await self.services.state.load(user.key)
        return str(state.get("mode", "")).startswith("upload:")

    async def _button(self, ctx: Context, data: str) -> list[Reply]:
        prefix, _, rest = data.partition(":")
        if prefix == MENU_PREFIX and rest in self.menu:
            return await self.menu[rest](ctx, "")
        if prefix == applicant.CASE_PREFIX:
            action, _, number = rest.partition(":")
            handler = self.case_actions.get(action)
            return await handler(ctx, number) if handler else [expired()]
        if prefix == "f":
            return await self._dialog_button(ctx, data)
        if prefix == "q" and self.services.consultation is not None:
            return await self.services.consultation.button(ctx, rest)
        if prefix == "s":
            await self._identify_staff(ctx)
            return await staff.button(ctx, rest)
        if prefix == casework.PREFIX:
            await self._identify_staff(ctx)
            return await casework.button(ctx, rest)
        if prefix == announcements.PREFIX:
            return await announcements.button(ctx, rest)
        if prefix == supplement.PREFIX:
            return await supplement.button(ctx, rest)
        if prefix == followup.PREFIX:
            return await followup.button(ctx, rest)
        if prefix == "k":
            await self._identify_staff(ctx)
            return await key_projects.button(ctx, rest)
        return [expired()]

    async def _dialog_text(self, ctx: Context, text: str) -> list[Reply]:
        draft = Draft.load(ctx.state["draft"])
        step = self.services.engine.on_text(draft, text)
        ctx.state["draft"] = draft.dump()
        return await self._with_preview(ctx, draft, step.replies)

    async def _dialog_button(self, ctx: Context, data: str) -> list[Reply]:
        saved = ctx.state.get("draft")
        if saved is None:
            return await self._stale_dialog_button(ctx, data)
        draft = Draft.load(saved)
        try:
            step = self.services.engine.on_button(draft, data)
        except Expired:
            return [expired()]
        if step.submit is not None:
            if draft.form == "announcement":
                await self._identify_staff(ctx)
                replies = await announcements.submit(ctx, draft.token, step.submit)
            else:
                replies = await applicant.submit(ctx, draft.token, step.submit)
            if not ctx.extra.get("keep_draft"):
                ctx.state.pop("draft", None)
            return replies
        if step.finished:
            ctx.state.pop("draft", None)
            replies = step.replies
            if step.stopped:
                replies = [*replies, *await applicant.contacts(ctx)]
            return [*replies[:-1], _with_menu_buttons(replies[-1])]
        ctx.state["draft"] = draft.dump()
        return await self._with_preview(ctx, draft, step.replies)

    async def _with_preview(self, ctx: Context, draft: Draft, replies: list[Reply]) -> list[Reply]:
        """An announcement's review page also says how many people it would reach."""
        if draft.form == "announcement" and draft.current is None:
            return [*replies, await announcements.preview_count(ctx, draft)]
        return replies

    async def _stale_dialog_button(self, ctx: Context, data: str) -> list[Reply]:
        """A second press of 提交 finds the case the first one created."""
        parts = data.split(":")
        if len(parts) == 3 and parts[2] == "submit":
            user = ctx.event.user
            async with self.services.db.sessions() as session:
                person = await applicants.find(session, user.channel, user.chat_id)
                case = (
                    await cases.by_submission_key(session, person.id, parts[1]) if person else None
                )
            if case is not None:
                return await applicant.already_submitted(ctx, case)
        return [expired()]

    async def _start(self, ctx: Context, payload: str) -> list[Reply]:
        if ctx.staff is not None:
            return [Reply(render("staff/start.j2", staff=ctx.staff))]
        if payload == "apply":
            await applicant.start(ctx)
            return await applicant.start_application(ctx)
        if payload.startswith("case_"):
            return await applicant.show_case(ctx, payload.removeprefix("case_"))
        return await applicant.start(ctx)

    async def _help(self, ctx: Context, _: str) -> list[Reply]:
        if ctx.staff is not None:
            return [Reply(render("staff/help.j2", staff=ctx.staff))]
        return [Reply(render("common/help.j2"), menu_buttons())]

    async def _status(self, ctx: Context, argument: str) -> list[Reply]:
        number, _, code = argument.partition(" ")
        if not number:
            return [with_menu("cases/status_usage.j2")]
        if code.strip():
            return await applicant.bind_case(ctx, number, code)
        return await applicant.show_case(ctx, number)

    async def _cancel(self, ctx: Context, _: str) -> list[Reply]:
        had = ctx.state.pop("draft", None) or ctx.state.pop("mode", None)
        return [with_menu("dialog/cancelled.j2" if had else "common/nothing_to_cancel.j2")]

    async def _ask(self, ctx: Context, question: str) -> list[Reply]:
        if question:
            return await self._free_text(ctx, question)
        ctx.state["mode"] = "ask"
        return [Reply(render("common/ask_prompt.j2"))]

    async def _free_text(self, ctx: Context, text: str) -> list[Reply]:
        consultation = self.services.consultation
        if consultation is None:
            return [with_menu("common/free_text.j2")]
        return await consultation.ask(ctx, text)


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


async def _now(replies: list[Reply]) -> list[Reply]:
    return replies
