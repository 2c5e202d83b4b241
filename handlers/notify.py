"""Notifications to people other than the sender: always rows in the caller's outbox transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.events import Button
from storage import outbox
from storage.models import Applicant, Staff
from storage.outbox import Recipient


def button_rows(buttons: list[list[Button]] | None) -> list[list[dict[str, str]]]:
    return [[{"label": b.label, "data": b.data} for b in row] for row in buttons or []]


def to_applicant(
    session: AsyncSession,
    applicant: Applicant,
    text: str,
    key: str,
    buttons: list[list[Button]] | None = None,
) -> None:
    """Queue a notice for an applicant (not for one who blocked the bot); `key` names the event."""
    if applicant.unreachable:
        return
    outbox.enqueue(
        session,
        Recipient(applicant.channel, applicant.chat_id),
        text,
        key=f"{key}:applicant",
        buttons=button_rows(buttons),
    )


def to_staff(
    session: AsyncSession,
    staff: Staff | None,
    text: str,
    key: str,
    buttons: list[list[Button]] | None = None,
) -> None:
    """Queue a notice for a staff member whose chat is bound; `key` names the event."""
    if staff is None or not staff.channel or not staff.chat_id:
        return
    outbox.enqueue(
        session,
        Recipient(staff.channel, staff.chat_id),
        text,
        key=f"{key}:staff:{staff.id}",
        buttons=button_rows(buttons),
    )
