"""On a case's screen: 给企业留言, 上传材料, 起草经办人意见 (agents on assigned cases, the window)
and 确认意见草稿 (the window). Each resolves, calls domain/agent_work.py, renders; the policy
decides who may, on the server, whatever the button said."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import Prompt
from chat.events import Reply, UploadedFile
from dialogs.texts import render
from domain import agent_work, audit, notices
from domain.buttons import CaseConfirm, CaseDraft, CaseReply, CaseUpload
from domain.cases import CaseNotFound, NotNow
from domain.policy import Actor, CaseTarget, NotAllowed, Right
from handlers import casework
from handlers.context import Context
from handlers.routes import Routes, staff_of
from handlers.supplement import REFUSALS, _keep, limit_text, safe_name
from services.uploads import Refusal
from storage import cases
from storage.models import Staff

log = logging.getLogger(__name__)
routes = Routes("agent_work")
TEXT_LIMIT = 2000  # characters of a message or a draft; the router caps any text at 4000
T = TypeVar("T")


class ReplyText(Prompt, prefix="case_reply"):
    number: str


class DraftText(Prompt, prefix="case_draft"):
    number: str


class StaffUpload(Prompt, prefix="case_upload"):
    number: str


def _reply(template: str, /, **context: object) -> list[Reply]:
    return [Reply(render(template, **context))]


async def _allowed(ctx: Context, number: str, right: Right) -> CaseTarget | list[Reply]:
    """The case, if this person may do `right` to it now; else the refusal to say."""
    actor = Actor.of_staff(staff_of(ctx))
    async with ctx.services.db.sessions() as session:
        case = await cases.by_number(session, number)
        target = CaseTarget(case, await cases.team_of(session, case.id)) if case else None
    refused = casework._refusal(actor, right, target)
    return refused or target or _reply("casework/not_found.j2")


async def _done(
    ctx: Context,
    number: str,
    run: Callable[[AsyncSession, Actor], Awaitable[T]],
    action: str,
    fields: tuple[str, ...],
) -> T | list[Reply]:
    """One operation as this person, its notices and 操作日志 record in one transaction."""
    try:
        async with ctx.transaction(immediate=True) as session:
            result = await run(session, Actor.of_staff(staff_of(ctx)))
            sent = getattr(result, "notices", None)
            notices.enqueue(session, sent if isinstance(sent, list) else [])
            audit.note(ctx.extra, action, case_number=number, fields=fields)
        return result
    except CaseNotFound:
        return _reply("casework/not_found.j2")
    except NotAllowed as refused:
        return _reply("casework/not_found.j2" if refused.hidden else "staff/not_allowed.j2")
    except NotNow as refused:
        return _reply(refused.template, case=refused.case, **refused.context)


async def _ask(
    ctx: Context, number: str, right: Right, prompt: Prompt, template: str
) -> list[Reply]:
    found = await _allowed(ctx, number, right)
    if isinstance(found, list):
        return found
    ctx.state["mode"] = prompt.pack()
    limit = limit_text(ctx.services.uploads.caps)
    return _reply(template, case=found.case, limit=limit)


def _text_ok(ctx: Context, prompt: Prompt, text: str) -> bool:
    if text.strip() and len(text) <= TEXT_LIMIT:
        return True
    ctx.state["mode"] = prompt.pack()  # ask again: the conversation stays where it was
    return False


async def _write(
    ctx: Context,
    data: ReplyText | DraftText,
    text: str,
    write: Callable[[AsyncSession, str, Actor, str], Awaitable[object]],
    action: str,
    fields: tuple[str, ...],
    template: str,
) -> list[Reply]:
    """A text typed to a case (a message, a draft): checked, written as this person, answered."""
    if not _text_ok(ctx, data, text):
        return _reply("casework/text_bad.j2", limit=TEXT_LIMIT)

    def run(session: AsyncSession, actor: Actor) -> Awaitable[object]:
        return write(session, data.number, actor, text.strip())

    result = await _done(ctx, data.number, run, action, fields)
    return result if isinstance(result, list) else _reply(template, number=data.number)


@routes.button(CaseReply, staff=True)
async def _reply_pressed(ctx: Context, data: CaseReply) -> list[Reply]:
    prompt = ReplyText(data.number)
    return await _ask(ctx, data.number, Right.REPLY, prompt, "casework/prompt_reply.j2")


@routes.prompt(ReplyText, staff=True)
async def send_message(ctx: Context, data: ReplyText, text: str) -> list[Reply]:
    """给企业留言: on the case's timeline and in the enterprise's chat."""
    template, fields = "casework/reply_sent.j2", ("message",)
    return await _write(ctx, data, text, agent_work.message, "case.reply", fields, template)


@routes.button(CaseDraft, staff=True)
async def _draft_pressed(ctx: Context, data: CaseDraft) -> list[Reply]:
    prompt = DraftText(data.number)
    return await _ask(ctx, data.number, Right.DRAFT_OPINION, prompt, "casework/prompt_draft.j2")


@routes.prompt(DraftText, staff=True)
async def save_draft(ctx: Context, data: DraftText, text: str) -> list[Reply]:
    """起草经办人意见: kept as a draft; the window's confirmation makes it the opinion."""
    write, fields = agent_work.draft_opinion, ("handler_opinion",)
    return await _write(
        ctx, data, text, write, "case.draft_opinion", fields, "casework/draft_saved.j2"
    )


@routes.button(CaseConfirm, staff=True)
async def confirm(ctx: Context, data: CaseConfirm) -> list[Reply]:
    """确认意见草稿: the draft becomes the case's 经办人意见."""

    def run(session: AsyncSession, actor: Actor) -> Awaitable[object]:
        return agent_work.confirm_opinion(session, data.number, data.draft_id, actor)

    result = await _done(ctx, data.number, run, "case.confirm_opinion", ("handler_opinion",))
    if isinstance(result, list):
        return result
    headline = render("casework/opinion_confirmed.j2", number=data.number)
    return [Reply(headline), *await casework.view(ctx, staff_of(ctx), data.number)]


@routes.button(CaseUpload, staff=True)
async def _upload_pressed(ctx: Context, data: CaseUpload) -> list[Reply]:
    prompt = StaffUpload(data.number)
    return await _ask(ctx, data.number, Right.UPLOAD, prompt, "casework/prompt_staff_upload.j2")


async def receive(ctx: Context, _: Staff, number: str, file: UploadedFile) -> list[Reply]:
    """上传材料: one file checked within the caps, then attached if the policy still allows."""
    ctx.state["mode"] = StaffUpload(number).pack()  # stay for the next file
    found = await _allowed(ctx, number, Right.UPLOAD)  # before any work on the content
    if isinstance(found, list):
        ctx.state.pop("mode", None)
        return found
    checker = ctx.services.uploads
    checked = await checker.check(file)  # in a worker thread, within the caps
    if checked.extension is None:
        template = REFUSALS[checked.refusal or Refusal.TYPE]
        return _reply(template, name=file.name, limit=limit_text(checker.caps))
    name, mime = safe_name(file.name, checked.extension), checked.mime
    stored = await asyncio.to_thread(_keep, file, ctx.services.files_dir)

    def run(session: AsyncSession, actor: Actor) -> Awaitable[object]:
        return agent_work.upload(session, number, actor, stored, name, mime)

    result = await _done(ctx, number, run, "case.upload", ("file",))
    if isinstance(result, list):
        ctx.state.pop("mode", None)
        return result
    return _reply("casework/staff_uploaded.j2", name=name, number=number)


routes.file(StaffUpload, receive, staff=True)
