"""Notices a domain operation returns; the caller puts them in the outbox in its transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from services import notify
from storage.models import Applicant, Staff


@dataclass(frozen=True)
class Notice:
    """One message to an applicant or a staff member; `key` names the event (idempotent)."""

    to: Applicant | Staff
    text: str
    key: str
    buttons: list[list[Button]] = field(default_factory=list)


def enqueue(session: AsyncSession, notices: list[Notice]) -> None:
    """Write the notices into the outbox rows of the caller's transaction."""
    for notice in notices:
        if isinstance(notice.to, Applicant):
            notify.to_applicant(session, notice.to, notice.text, notice.key, notice.buttons)
        else:
            notify.to_staff(session, notice.to, notice.text, notice.key, notice.buttons)
