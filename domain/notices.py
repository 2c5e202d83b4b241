"""Notices a domain operation returns; the caller puts them in the outbox in its transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.texts import label
from domain.buttons import QuestionDone, QuestionForward, QuestionReply
from services import notify
from storage.models import Applicant, Question, Staff


@dataclass(frozen=True)
class Notice:
    """One message to an applicant or a staff member; `key` names the event (idempotent)."""

    to: Applicant | Staff
    text: str
    key: str
    buttons: list[list[Button]] = field(default_factory=list)
    document: dict[str, Any] | None = None  # rendered when delivered (services/documents.py)


def enqueue(session: AsyncSession, notices: list[Notice]) -> None:
    """Write the notices into the outbox rows of the caller's transaction."""
    for notice in notices:
        if isinstance(notice.to, Applicant):
            notify.to_applicant(session, notice.to, notice.text, notice.key, notice.buttons)
        else:
            notify.to_staff(
                session, notice.to, notice.text, notice.key, notice.buttons, notice.document
            )


def staff_question_buttons(question: Question, owner_view: bool) -> list[list[Button]]:
    row = [QuestionReply(question.id).button(label("buttons", "reply"))]
    if owner_view:
        row.append(QuestionForward(question.id).button(label("buttons", "forward")))
        row.append(QuestionDone(question.id).button(label("buttons", "resolved")))
    return [row]


def notify_question_staff(
    session: AsyncSession,
    staff: Staff | None,
    text: str,
    question: Question,
    event: str,
    owner_view: bool | None = None,
) -> None:
    """A notice about a question, with the buttons its owner (or helper) may press."""
    if staff is None:
        return
    is_owner = question.owner_id == staff.id if owner_view is None else owner_view
    buttons = staff_question_buttons(question, is_owner)
    notify.to_staff(session, staff, text, f"question:{question.id}:{event}", buttons)
