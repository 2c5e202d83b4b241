"""Notifications to people other than the sender: always rows in the caller's outbox transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.fit import split_html
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
    _enqueue(
        session, Recipient(applicant.channel, applicant.chat_id), text, f"{key}:applicant", buttons
    )


def to_staff(
    session: AsyncSession,
    staff: Staff | None,
    text: str,
    key: str,
    buttons: list[list[Button]] | None = None,
    document: dict[str, Any] | None = None,
) -> None:
    """Queue a notice for each bound chat of a staff member (Telegram, the web …), once
    per channel; `key` names the event; `document` is rendered when delivered."""
    if staff is None:
        return
    for index, (channel, chat_id) in enumerate(staff.chats()):
        suffix = "" if index == 0 else f":{channel}"  # the first chat keeps the old key
        recipient = Recipient(channel, chat_id)
        _enqueue(session, recipient, text, f"{key}:staff:{staff.id}{suffix}", buttons, document)


def _enqueue(
    session: AsyncSession,
    recipient: Recipient,
    text: str,
    key: str,
    buttons: list[list[Button]] | None,
    document: dict[str, Any] | None = None,
) -> None:
    """One outbox row per part of a text too long for one message, in order; the buttons
    and the document go with the last part."""
    parts = split_html(text)
    for index, part in enumerate(parts, start=1):
        last = index == len(parts)
        outbox.enqueue(
            session,
            recipient,
            part,
            key=key if index == 1 else f"{key}:part{index}",
            buttons=button_rows(buttons) if last else [],
            document=document if last else None,
        )
