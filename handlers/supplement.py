"""材料补正: the applicant uploads what staff asked for; the case resumes when they are done."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from pathlib import Path

from chat.callbacks import Prompt
from chat.events import Button, Reply, UploadedFile
from dialogs.texts import label, render
from domain import cases as life
from domain import notices
from domain.buttons import CaseRef, UploadStart
from domain.cases import CaseNotFound, NotNow, StaleAction
from domain.policy import Actor, NotAllowed
from handlers.context import Context
from handlers.menu import with_menu
from handlers.routes import Routes
from services.uploads import MIB, Refusal, UploadCaps
from storage import cases, files
from storage.models import Case, CaseStatus

log = logging.getLogger(__name__)
routes = Routes("supplement")
REFUSALS = {
    Refusal.TOO_LARGE: "casework/upload_too_large.j2",
    Refusal.TYPE: "casework/upload_refused.j2",
    Refusal.DAMAGED: "casework/upload_damaged.j2",
}
_UNSAFE = re.compile(r"[^\w.\-（）()]+")


class UploadDone(CaseRef, prefix="u:done"): ...  # 上传完成


class Upload(Prompt, prefix="upload"):
    """Files are awaited for this case's 补正."""

    number: str


def safe_name(name: str, extension: str) -> str:
    """A file name without paths or odd characters, with the extension its content has."""
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = _UNSAFE.sub("_", base.rsplit(".", 1)[0]).strip("._") or "file"
    return f"{stem[:80]}{extension}"


def limit_text(caps: UploadCaps) -> str:
    """The size cap as people read it: 20 MB."""
    size = caps.max_bytes
    return f"{size // MIB} MB" if size % MIB == 0 else f"{max(1, size // 1024)} KB"


def _keep(file: UploadedFile, root: Path) -> tuple[str, int]:
    with file.open() as source:
        return files.keep(root, source)


async def _waiting_case(ctx: Context, number: str) -> Case | None:
    applicant = ctx.sender()
    if applicant is None:
        return None
    async with ctx.services.db.sessions() as session:
        case = await cases.for_applicant(session, applicant.id, number)
    if case is None or case.status != CaseStatus.NEEDS_SUPPLEMENT:
        return None
    return case


def _done_button(number: str) -> list[list[Button]]:
    return [[UploadDone(number).button(label("buttons", "upload_done"))]]


async def receive(ctx: Context, number: str, file: UploadedFile) -> list[Reply]:
    """Attach one uploaded file to the case waiting for it; refuse with the limits stated."""
    ctx.state["mode"] = Upload(number).pack()  # stay in upload mode for the next file
    case = await _waiting_case(ctx, number)
    if case is None:
        ctx.state.pop("mode", None)
        return [with_menu("cases/not_found.j2")]
    checker = ctx.services.uploads
    checked = await checker.check(file)  # in a worker thread, within the caps
    if checked.extension is None:
        template = REFUSALS[checked.refusal or Refusal.TYPE]
        text = render(template, name=file.name, limit=limit_text(checker.caps))
        return [Reply(text, _done_button(number))]
    name = safe_name(file.name, checked.extension)
    sha256, size = await asyncio.to_thread(_keep, file, ctx.services.files_dir)
    async with ctx.transaction() as session:
        await files.link(
            session, case.id, sha256, size, name, checked.mime, "supplement", "applicant"
        )
    log.info("supplement received case=%s bytes=%s", number, size)
    return [Reply(render("casework/upload_ok.j2", name=name), _done_button(number))]


async def finish(ctx: Context, case: Case) -> list[Reply]:
    """上传完成: the case goes back to 办理中 and its clock restarts."""
    applicant = ctx.sender()
    if applicant is None:
        return [with_menu("cases/not_found.j2")]
    try:
        async with ctx.transaction(immediate=True) as session:
            moved = await life.supplied(session, case.number, Actor.of_applicant(applicant.id))
            notices.enqueue(session, moved.notices)
    except (CaseNotFound, NotAllowed):
        return [with_menu("cases/not_found.j2")]
    except StaleAction as stale:
        ctx.state.pop("mode", None)
        return [with_menu("cases/stale.j2", case=stale.case)]
    except NotNow as refused:
        return [Reply(render(refused.template), _done_button(case.number))]
    ctx.state.pop("mode", None)
    return [with_menu("casework/upload_done.j2")]


@routes.button(UploadStart, applicant=True)
async def _start(ctx: Context, data: UploadStart) -> list[Reply]:
    if await _waiting_case(ctx, data.number) is None:
        return [with_menu("cases/not_found.j2")]
    ctx.state["mode"] = Upload(data.number).pack()
    prompt = render("casework/upload_prompt.j2", limit=limit_text(ctx.services.uploads.caps))
    return [Reply(prompt, _done_button(data.number))]


@routes.button(UploadDone, applicant=True)
async def _done(ctx: Context, data: UploadDone) -> list[Reply]:
    case = await _waiting_case(ctx, data.number)
    if case is None:
        return [with_menu("cases/not_found.j2")]
    return await finish(ctx, case)


routes.file(Upload, receive, applicant=True)
