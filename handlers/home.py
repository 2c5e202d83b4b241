"""The commands every chat has: /start, /help, /status, /cancel."""

from __future__ import annotations

from chat.events import Reply
from dialogs.texts import render
from handlers import applicant
from handlers.context import Context
from handlers.menu import menu_buttons, with_menu
from handlers.routes import Routes

routes = Routes("home")


@routes.command("start", actor=True, applicant=True)
async def start(ctx: Context, payload: str) -> list[Reply]:
    if ctx.staff is not None:
        return [Reply(render("staff/start.j2", staff=ctx.staff))]
    if payload == "apply":
        await applicant.start(ctx)
        return await applicant.start_application(ctx)
    if payload.startswith("case_"):
        return await applicant.show_case(ctx, payload.removeprefix("case_"))
    return await applicant.start(ctx)


@routes.command("help", actor=True)
async def help_(ctx: Context, _: str) -> list[Reply]:
    if ctx.staff is not None:
        return [Reply(render("staff/help.j2", staff=ctx.staff))]
    return [Reply(render("common/help.j2"), menu_buttons())]


@routes.command("status", applicant=True)
async def status(ctx: Context, argument: str) -> list[Reply]:
    number, _, code = argument.partition(" ")
    if not number:
        return [with_menu("cases/status_usage.j2")]
    if code.strip():
        return await applicant.bind_case(ctx, number, code)
    return await applicant.show_case(ctx, number)


@routes.command("cancel")
async def cancel(ctx: Context, _: str) -> list[Reply]:
    had = ctx.state.pop("draft", None) or ctx.state.pop("mode", None)
    return [with_menu("dialog/cancelled.j2" if had else "common/nothing_to_cancel.j2")]
