"""What the workers of a case add to it besides its steps: a message to the enterprise, the
materials they upload, and 经办人意见 drafted by an agent that the window confirms.

Each operation locks the case, checks the policy (agents only on assigned cases while their
contract runs), records a CaseEvent and returns the notices, in the caller's transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.texts import label, render
from domain.buttons import CaseView
from domain.cases import INSTRUCTABLE, Moved, NotNow, locked, to_followers
from domain.notices import Notice
from domain.policy import Actor, Right
from storage import agencies, cases, files, questions
from storage.models import ActorKind, Case, CaseFile, CaseStatus, OpinionDraft, utcnow

log = logging.getLogger(__name__)


def _working(case: Case) -> None:
    """Messages, materials and drafts belong to a case still being worked."""
    if CaseStatus(case.status) not in INSTRUCTABLE:
        raise NotNow(case, "casework/case_finished.j2")


async def message(session: AsyncSession, number: str, actor: Actor, text: str) -> Moved:
    """A message to the enterprise: on its timeline and in its chat (and its 查询码 viewers')."""
    case, _ = await locked(session, number, actor, Right.REPLY)
    _working(case)
    event = cases.record(case, CaseStatus(case.status), ActorKind.STAFF, actor.id, text)
    await session.flush()
    notice = render("casework/notice_message.j2", case=case, text=text)
    key = f"case:{case.number}:message:{event.id}"
    log.info("case message number=%s by=%s", case.number, actor)
    return Moved(case, event, await to_followers(session, case, notice, key, []))


async def upload(
    session: AsyncSession,
    number: str,
    actor: Actor,
    stored: tuple[str, int],
    name: str,
    mime: str,
) -> CaseFile:
    """Materials a worker adds (`stored`: the blob's sha256 and size, kept already)."""
    case, _ = await locked(session, number, actor, Right.UPLOAD)
    _working(case)
    sha256, size = stored
    added = await files.link(session, case.id, sha256, size, name, mime, "staff", str(actor))
    note = render("casework/event_uploaded.j2", name=name)
    cases.record(case, CaseStatus(case.status), ActorKind.STAFF, actor.id, note, visible=False)
    return added


@dataclass
class Drafted:
    draft: OpinionDraft
    notices: list[Notice]


async def draft_opinion(session: AsyncSession, number: str, actor: Actor, text: str) -> Drafted:
    """An agent's 经办人意见 draft; the case's window handler (if any) is asked to confirm it."""
    case, _ = await locked(session, number, actor, Right.DRAFT_OPINION)
    _working(case)
    if actor.id is None:
        raise NotNow(case)
    draft = OpinionDraft(case_id=case.id, author_id=actor.id, text=text)
    session.add(draft)
    note = render("casework/event_drafted.j2")
    cases.record(case, CaseStatus(case.status), ActorKind.STAFF, actor.id, note, visible=False)
    await session.flush()
    handler = await questions.staff(session, case.handler_id)
    notices = []
    if handler is not None:
        text_ = render("casework/staff_draft_waiting.j2", case=case)
        button = [[CaseView(case.number).button(label("buttons", "handle"))]]
        notices.append(Notice(handler, text_, f"case:{case.number}:draft:{draft.id}", button))
    log.info("opinion drafted number=%s draft=%s by=%s", case.number, draft.id, actor)
    return Drafted(draft, notices)


async def confirm_opinion(session: AsyncSession, number: str, draft_id: int, actor: Actor) -> Moved:
    """The window confirms a draft: it becomes the case's 经办人意见 (once)."""
    case, _ = await locked(session, number, actor, Right.CONFIRM_OPINION)
    _working(case)
    draft = await agencies.draft(session, draft_id)
    if draft is None or draft.case_id != case.id or draft.confirmed_at is not None:
        raise NotNow(case, "casework/draft_gone.j2")
    case.handler_opinion = draft.text
    draft.confirmed_by, draft.confirmed_at = actor.id, utcnow()
    note = render("casework/event_confirmed.j2")
    event = cases.record(
        case, CaseStatus(case.status), ActorKind.STAFF, actor.id, note, visible=False
    )
    log.info("opinion confirmed number=%s draft=%s by=%s", case.number, draft.id, actor)
    return Moved(case, event, [])
