"""What goes into the 操作日志 and when: one record per staff, agent or administrator action
and per view of a screen with an enterprise's personal data (storage/audit.py keeps them).

A handler says what it did or showed with `note(ctx.extra, …)`. An action's record is written
in the action's own transaction (`Context.transaction` appends it just before the commit), so a
failed action leaves no record of being done and a done one always has its record; a view's
record is written by the router after the handler, before the screen is sent (no record, no
screen). Without a note the record names the route and the callback's case or key project.
Exports and /desk pages write theirs with `record` or `append`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.policy import Actor
from storage import applicants, audit, cases, roster
from storage.db import Database

NOTE = "audit"  # the key of ctx.extra a handler's note goes under
DEFAULT = "audit_default"  # the router's note for an update whose handler notes nothing
WRITTEN = "audit_written"  # the update's record committed with its action's transaction
# The case screen's fields of the enterprise (the 申请表's), as the record names them.
CASE_SCREEN_FIELDS = (
    "company",
    "credit_code",
    "project_name",
    "project_code",
    "contact_name",
    "contact_phone",
    "project_summary",
    "requested_items",
    "handler_opinion",
)
# What an export of the case list holds of each enterprise (/desk and `bangdaiban export`).
CASES_EXPORT_FIELDS = (
    "company",
    "project_name",
    "contact_name",
    "contact_phone",
    "handler_opinion",
)
OPERATOR = "operator"  # actor_kind of a command-line operator (no staff identity)


@dataclass(frozen=True)
class Note:
    """What a handler did or showed: the action and the case or key project, the fields."""

    action: str
    case_number: str | None = None
    key_project_id: int | None = None
    fields: tuple[str, ...] = ()


def note(extra: dict[str, Any], action: str, **what: Any) -> None:
    """Say what this update did or showed; the first note of an update wins (a step's
    handler notes the step, then shows the case screen again)."""
    extra.setdefault(NOTE, Note(action, **what))


def entry(actor: Actor, note: Note, channel: str | None, client: str | None = None) -> audit.Entry:
    return audit.Entry(
        action=note.action,
        actor_kind=str(actor.kind),
        actor_id=actor.id,
        role=str(actor.role) if actor.role else None,
        unit_id=actor.unit_id,
        agency_id=actor.agency_id,
        case_number=note.case_number,
        key_project_id=note.key_project_id,
        fields=note.fields,
        channel=channel,
        client=client,
    )


def operator(action: str, fields: tuple[str, ...], account: str) -> audit.Entry:
    """A command-line operator's record: the OS account and host stand for who and where."""
    return audit.Entry(action, OPERATOR, fields=fields, channel="cli", client=account)


async def _with_case(session: AsyncSession, item: audit.Entry) -> audit.Entry:
    """The entry with the case's id and the enterprise (applicant) id looked up by number."""
    if not item.case_number:
        return item
    number = item.case_number.strip().upper()
    row = await cases.ids_by_number(session, number)
    if row is None:
        return dataclasses.replace(item, case_number=None)  # no such case: no number either
    return dataclasses.replace(item, case_number=number, case_id=row[0], applicant_id=row[1])


async def append(session: AsyncSession, item: audit.Entry) -> None:
    """One record in the caller's transaction (an action audited where it commits)."""
    await audit.append(session, await _with_case(session, item))


async def holder(session: AsyncSession, channel: str, chat_id: str) -> Actor | None:
    """Who a chat is: the staff member bound to it, else the applicant, else nobody known."""
    staff = await roster.staff_by_chat(session, channel, chat_id)
    if staff is not None:
        return Actor.of_staff(staff)
    applicant = await applicants.find(session, channel, chat_id)
    return Actor.of_applicant(applicant.id) if applicant is not None else None


async def download(
    db: Database,
    chat: tuple[str, str] | None,
    action: str,
    case_number: str | None,
    channel: str,
    client: str | None,
    actor: Actor | None = None,
) -> None:
    """One record of a file served (a link opened): who the link was made for (`chat`, its
    channel and chat id, or `actor` where the request is signed in), what, from where."""
    async with db.transaction(immediate=True) as session:
        if actor is None and chat is not None:
            actor = await holder(session, *chat)
        done = Note(action, case_number=case_number)
        if actor is None:  # a link made for a chat nobody is behind any more
            item = audit.Entry(action, "visitor", case_number=case_number, channel=channel)
            item = dataclasses.replace(item, client=client and client[:64])
        else:
            item = entry(actor, done, channel, client)
        await append(session, item)


async def record(db: Database, item: audit.Entry) -> None:
    """One record in its own serialised transaction (a view, an export)."""
    async with db.transaction(immediate=True) as session:
        await append(session, item)
