"""上门服务 (work plan 三(二)3(1)): a key project's team proposes a visit (time, address,
units); the enterprise confirms or proposes another time, which the team accepts; the units
confirm; reminders like a booking; 已上门/未成行 with a record on the project's timeline.

Every verb runs on the visit row locked (SELECT … FOR UPDATE) and checks the status it
expects, so two presses at once change it once and notify once."""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Button
from dialogs.texts import label, render
from domain import policy
from domain.bookings import confirm_unit, send_reminders
from domain.buttons import VisitAccept, VisitAgree, VisitOther, VisitUnitConfirm
from domain.notices import Notice
from domain.policy import Actor
from domain.reminders import Services
from services.workdays import CHINA, official
from storage import bookings, key_projects, visits
from storage.models import Applicant, KeyProject, Milestone, Staff, Visit, VisitStatus

log = logging.getLogger(__name__)
WHEN = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class VisitLimits:
    """Settings of 上门服务 (bot/config.py)."""

    minutes: int = 120  # how long a visit is planned for
    days_ahead: int = 30  # how far ahead a visit may be proposed
    earliest: dt.time = dt.time(8, 0)  # a visit starts within office hours, China time
    latest: dt.time = dt.time(18, 0)


class NotVisitable(Exception):
    """The time typed cannot be a visit; the template says why."""

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template


def parse_when(text: str) -> dt.datetime | None:
    """ "2026-12-09 10:00" (full-width digits and colon too), China time → UTC; None if not."""
    folded = unicodedata.normalize("NFKC", text).strip()[:40]
    found = WHEN.fullmatch(folded)
    if found is None:
        return None
    year, month, day, hour, minute = (int(p) for p in found.groups())
    try:
        local = dt.datetime(year, month, day, hour, minute, tzinfo=CHINA)
    except ValueError:
        return None
    return local.astimezone(dt.UTC)


def check_when(when: dt.datetime, now: dt.datetime, limits: VisitLimits) -> None:
    """A visit starts on a working day, within office hours, after now and not too far."""
    local = when.astimezone(CHINA)
    if when <= now or when > now + dt.timedelta(days=limits.days_ahead):
        raise NotVisitable("visits/when_range.j2")
    if not official().is_workday(local.date()):
        raise NotVisitable("visits/when_holiday.j2")
    if not limits.earliest <= local.time() <= limits.latest:
        raise NotVisitable("visits/when_hours.j2")


def goes(actor: Actor, visit: Visit) -> bool:
    """Staff who see a visit on /appointments: the window, or a unit that goes."""
    return policy.attends(actor, frozenset(u.department_id for u in visit.units))


async def propose(
    session: AsyncSession,
    project: KeyProject,
    staff: Staff,
    when: dt.datetime,
    address: str,
    unit_ids: Sequence[int],
    now: dt.datetime,
    limits: VisitLimits,
) -> tuple[Visit, list[Notice]]:
    """Record the proposal; the enterprise is asked, the units are told. A project with no
    enterprise in the chat was agreed on the phone: it is confirmed at once."""
    check_when(when, now, limits)
    applicant = await visits.project_applicant(session, project)
    units = list(unit_ids) or [staff.department_id]
    visit = await visits.create(
        session,
        project,
        staff.id,
        when,
        when + dt.timedelta(minutes=limits.minutes),
        address,
        applicant.id if applicant else None,
        units,
        now,
    )
    if applicant is None:
        visit.status, visit.confirmed_at = VisitStatus.CONFIRMED, now
    log.info("visit proposed number=%s project=%s", visit.number, project.id)
    notices = _to_enterprise(visit, applicant, "proposed")
    return visit, notices + await unit_notices(session, visit, "proposed", skip=staff.id)


def _to_enterprise(visit: Visit, applicant: Applicant | None, event: str) -> list[Notice]:
    if applicant is None:
        return []
    buttons: list[list[Button]] = []
    if event == "proposed":
        buttons = [
            [
                VisitAgree(visit.number).button(label("visits", "agree")),
                VisitOther(visit.number).button(label("visits", "other")),
            ]
        ]
    text = render("visits/enterprise_notice.j2", visit=visit, event=event)
    key = f"visit:{visit.id}:{event}:{visit.starts_at:%Y%m%d%H%M}"
    return [Notice(applicant, text, key, buttons)]


async def unit_notices(
    session: AsyncSession, visit: Visit, event: str, skip: int | None = None
) -> list[Notice]:
    """Each person of the units that go (and the proposer): proposed, confirmed, moved …"""
    people = await bookings.unit_staff(session, [u.department_id for u in visit.units])
    proposer = await bookings.staff_by_ids(session, [visit.proposed_by])
    found = []
    for person in {p.id: p for p in [*proposer, *people]}.values():
        if person.id == skip:
            continue
        unit = next((u for u in visit.units if u.department_id == person.department_id), None)
        buttons = []
        if unit is not None and unit.confirmed_at is None and event != "cancelled":
            buttons = [[VisitUnitConfirm(visit.number).button(label("visits", "unit_confirm"))]]
        if event == "rescheduling":
            buttons = [[VisitAccept(visit.number).button(label("visits", "accept"))]]
        text = render("visits/staff_notice.j2", visit=visit, event=event)
        key = f"visit:{visit.id}:{event}:{visit.starts_at:%Y%m%d%H%M}"
        found.append(Notice(person, text, key, buttons))
    return found


async def agree(session: AsyncSession, visit: Visit, now: dt.datetime) -> list[Notice] | None:
    """The enterprise confirms the proposed time; None when it is not waiting for that."""
    if visit.status != VisitStatus.PROPOSED:
        return None
    visit.status, visit.confirmed_at, visit.updated_at = VisitStatus.CONFIRMED, now, now
    await session.flush()
    log.info("visit confirmed number=%s", visit.number)
    return await unit_notices(session, visit, "confirmed")


async def counter(
    session: AsyncSession, visit: Visit, when: dt.datetime, now: dt.datetime, limits: VisitLimits
) -> list[Notice] | None:
    """The enterprise proposes another time; the team is asked to accept it."""
    if visit.status not in (VisitStatus.PROPOSED, VisitStatus.RESCHEDULING):
        return None
    check_when(when, now, limits)
    visit.status, visit.wanted_at, visit.updated_at = VisitStatus.RESCHEDULING, when, now
    await session.flush()
    log.info("visit other time number=%s", visit.number)
    return await unit_notices(session, visit, "rescheduling")


async def accept(session: AsyncSession, visit: Visit, now: dt.datetime) -> list[Notice] | None:
    """The team takes the enterprise's time: confirmed, the units confirm again."""
    if visit.status != VisitStatus.RESCHEDULING or visit.wanted_at is None:
        return None
    length = visit.ends_at - visit.starts_at
    visit.starts_at, visit.ends_at = visit.wanted_at, visit.wanted_at + length
    visit.status, visit.confirmed_at, visit.updated_at = VisitStatus.CONFIRMED, now, now
    visit.reminded_day_at = visit.reminded_hour_at = None
    for unit in visit.units:
        unit.confirmed_by = unit.confirmed_at = None
    await session.flush()
    notices = _to_enterprise(visit, visit.applicant, "accepted")
    return notices + await unit_notices(session, visit, "moved")


async def unit_confirm(session: AsyncSession, visit: Visit, staff: Staff, now: dt.datetime) -> bool:
    """A person of a unit that goes confirms for the unit; False when done already."""
    if confirm_unit(visit.units, staff, now) is None:
        return False
    await session.flush()
    return True


async def mark(
    session: AsyncSession,
    visit: Visit,
    staff: Staff,
    attended: bool,
    record: str,
    now: dt.datetime,
) -> None:
    """已上门/未成行 with a short record, written as a done milestone of the key project."""
    visit.status = VisitStatus.ATTENDED if attended else VisitStatus.ABSENT
    visit.record, visit.marked_by, visit.updated_at = record or None, staff.id, now
    note = render("visits/timeline_note.j2", visit=visit, attended=attended, record=record)
    session.add(
        Milestone(
            key_project_id=visit.key_project_id,
            title=note[:200],
            due_on=visit.starts_at.astimezone(CHINA).date(),
            done_at=now,
        )
    )
    await session.flush()


async def on_team(session: AsyncSession, staff: Staff, visit: Visit) -> bool:
    return staff.role == "admin" or await key_projects.is_member(
        session, visit.key_project_id, staff.id
    )


async def _reminders(session: AsyncSession, visit: Visit, kind: str) -> list[Notice]:
    """The enterprise and the confirmed units' people, reminded once per start time."""
    found = _to_enterprise(visit, visit.applicant, f"remind_{kind}")
    confirmed = [u.confirmed_by for u in visit.units if u.confirmed_by is not None]
    for person in await bookings.staff_by_ids(session, confirmed):
        text = render("visits/staff_notice.j2", visit=visit, event=f"remind_{kind}")
        key = f"visit:{visit.id}:remind_{kind}:{visit.starts_at:%Y%m%d%H%M}"
        found.append(Notice(person, text, key))
    return found


async def remind_visits(services: Services, now: dt.datetime) -> int:
    """Confirmed visits: the enterprise and the confirmed units' people, the working day
    before at 16:00 and one hour before, each once."""
    return await send_reminders(services, now, visits.reminder_candidates, _reminders)
