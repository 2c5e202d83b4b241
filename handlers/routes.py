"""Route tables: each feature module declares its commands, buttons and prompts next to its
handlers, and the router includes the tables (the way aiogram's routers do).

    routes = Routes("casework")
    routes.on(CaseView, view, staff=True)        # view(ctx, staff, number)

    @routes.button(CaseStep, staff=True)          # or take the typed data whole
    async def step(ctx: Context, data: CaseStep) -> list[Reply]: ...

`actor=True` asks the router to resolve who the sender is (staff with role and unit) once,
before the handler runs; ctx.staff and ctx.actor then hold the answer. `staff=True` also
answers anyone but staff with the table's `refusal`, and `on()` passes the staff member first.
`applicant=True` asks for the applicant behind the chat the same way: ctx.sender(). A handler
that writes to the applicant's row (or creates it) takes it in its own transaction with
`ctx.enrol(session)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from chat.callbacks import CallbackData, Prompt
from chat.events import Reply
from dialogs.engine import Draft
from dialogs.fields import Value
from handlers.context import Context
from storage.models import Staff

C = TypeVar("C", bound=CallbackData)
P = TypeVar("P", bound=Prompt)
F = TypeVar("F", bound=Callable[..., Any])
Replies = Awaitable[list[Reply]]


@dataclass(frozen=True)
class Route:
    handler: Callable[..., Replies]
    actor: bool = False  # resolve the sender (staff or not) before the handler runs
    applicant: bool = False  # resolve the applicant behind the chat before the handler runs
    refusal: str | None = None  # staff only: what anyone else is answered (a template)
    spread: bool = False  # the typed data's fields as arguments (after the staff member)
    bare: bool = False  # the handler takes the context only

    def arguments(self, ctx: Context, args: tuple[object, ...]) -> tuple[object, ...]:
        if self.bare:
            return ()
        if not self.spread:
            return args
        data, *rest = args
        values = [getattr(data, f.name) for f in dataclasses.fields(data)]  # type: ignore[arg-type]
        head = (staff_of(ctx),) if self.refusal is not None else ()
        return (*head, *values, *rest)


@dataclass(frozen=True)
class FormRoute:
    """A declarative form's ends: what 提交 does with the answers, what the review page adds
    (the announcement's audience), and what a second 提交 after the draft is gone finds."""

    submit: Callable[[Context, str, dict[str, Value]], Replies]
    actor: bool = False
    applicant: bool = False  # resolved before submit and resubmit
    review: Callable[[Context, Draft], Awaitable[Reply]] | None = None
    resubmit: Callable[[Context, str], Awaitable[list[Reply] | None]] | None = None
    stopped: Callable[[Context], Awaitable[list[Reply]]] | None = None  # an answer ruled it out
    # Looks up the draft's own options after each step (free slots); True: show it again.
    prepare: Callable[[Context, Draft], Awaitable[bool]] | None = None


@dataclass
class Routes:
    """One feature's commands, button kinds, prompt kinds, file prompts, menu actions, forms."""

    name: str
    refusal: str = "staff/not_allowed.j2"  # answered to non-staff on a staff-only route
    commands: dict[str, Route] = field(default_factory=dict)
    buttons: dict[type[CallbackData], Route] = field(default_factory=dict)
    prompts: dict[type[Prompt], Route] = field(default_factory=dict)
    files: dict[type[Prompt], Route] = field(default_factory=dict)
    menu: dict[str, Route] = field(default_factory=dict)  # actions of the main menu's buttons
    forms: dict[str, FormRoute] = field(default_factory=dict)  # what a dialog's 提交 does
    text: Route | None = None  # any other text (the FAQ consultation)

    def _route(
        self, handler: Any, actor: bool, staff: bool, applicant: bool = False, **how: bool
    ) -> Route:
        refusal = self.refusal if staff else None
        return Route(handler, actor or staff, applicant=applicant, refusal=refusal, **how)

    def command(
        self,
        *names: str,
        actor: bool = False,
        staff: bool = False,
        applicant: bool = False,
        bare: bool = False,
    ) -> Callable[[F], F]:
        """`/name argument`: handler(ctx, argument), or handler(ctx) when `bare`."""

        def add(handler: F) -> F:
            for name in names:
                route = self._route(handler, actor, staff, applicant, bare=bare)
                _add(self.commands, name, route)
            return handler

        return add

    def menu_action(
        self, *actions: str, applicant: bool = False, actor: bool = False
    ) -> Callable[[F], F]:
        """A main-menu button (handlers/menu.py): handler(ctx)."""

        def add(handler: F) -> F:
            for action in actions:
                route = Route(handler, actor=actor, applicant=applicant, bare=True)
                _add(self.menu, action, route)
            return handler

        return add

    def button(
        self, kind: type[C], actor: bool = False, staff: bool = False, applicant: bool = False
    ) -> Callable[[Callable[[Context, C], Replies]], Callable[[Context, C], Replies]]:
        """A button kind whose handler takes the typed data: handler(ctx, data)."""

        def add(handler: Callable[[Context, C], Replies]) -> Callable[[Context, C], Replies]:
            _add(self.buttons, kind, self._route(handler, actor, staff, applicant))
            return handler

        return add

    @overload
    def on(
        self,
        kind: type[CallbackData],
        handler: Callable[..., Replies],
        *,
        actor: bool = ...,
        staff: bool = ...,
        applicant: bool = ...,
    ) -> None: ...

    @overload
    def on(
        self,
        kind: type[CallbackData],
        handler: None = None,
        *,
        actor: bool = ...,
        staff: bool = ...,
        applicant: bool = ...,
    ) -> Callable[[F], F]: ...

    def on(
        self,
        kind: type[CallbackData],
        handler: Callable[..., Replies] | None = None,
        *,
        actor: bool = False,
        staff: bool = False,
        applicant: bool = False,
    ) -> Callable[[F], F] | None:
        """A button kind whose fields are the handler's arguments:
        handler(ctx, [staff,] *fields). Without `handler`, a decorator above its definition."""

        def add(handler: F) -> F:
            _add(self.buttons, kind, self._route(handler, actor, staff, applicant, spread=True))
            return handler

        if handler is None:
            return add
        add(handler)
        return None

    def prompt(
        self, kind: type[P], actor: bool = False, staff: bool = False, applicant: bool = False
    ) -> Callable[[Callable[[Context, P, str], Replies]], Callable[[Context, P, str], Replies]]:
        """A prompt kind (waiting for text): handler(ctx, data, text)."""

        def add(
            handler: Callable[[Context, P, str], Replies],
        ) -> Callable[[Context, P, str], Replies]:
            _add(self.prompts, kind, self._route(handler, actor, staff, applicant))
            return handler

        return add

    def on_text(
        self, kind: type[Prompt], handler: Callable[..., Replies], staff: bool = False
    ) -> None:
        """A prompt kind whose fields come before the text: handler(ctx, [staff,] *fields, text)."""
        _add(self.prompts, kind, self._route(handler, False, staff, spread=True))

    def file(
        self,
        kind: type[Prompt],
        handler: Callable[..., Replies],
        applicant: bool = False,
        staff: bool = False,
    ) -> None:
        """A prompt kind that awaits files: handler(ctx, [staff,] *fields, file)."""
        _add(self.files, kind, self._route(handler, False, staff, applicant, spread=True))

    def form(self, name: str, route: FormRoute) -> None:
        _add(self.forms, name, route)

    def any_text(self, handler: F) -> F:
        """Any text nothing else waits for: handler(ctx, text); one in all the tables."""
        if self.text is not None:
            raise ValueError(f"{self.name}: a second text fallback")
        self.text = Route(handler)
        return handler

    def include(self, other: Routes) -> None:
        """Take another table's routes; a name or kind declared twice is an error."""
        for mine, theirs in (
            (self.commands, other.commands),
            (self.buttons, other.buttons),
            (self.prompts, other.prompts),
            (self.files, other.files),
            (self.menu, other.menu),
            (self.forms, other.forms),
        ):
            for key, route in theirs.items():
                _add(mine, key, route)
        if other.text is not None:
            self.any_text(other.text.handler)


def _add(table: dict[Any, Any], key: object, route: Route | FormRoute) -> None:
    if key in table:
        raise ValueError(f"route declared twice: {key!r}")
    table[key] = route


def staff_of(ctx: Context) -> Staff:
    """The staff member behind a staff-only route (the router has checked there is one)."""
    if ctx.staff is None:
        raise RuntimeError("staff_of() outside a staff-only route")
    return ctx.staff
