"""The services handlers receive, wired once by bot/app.py, and the per-update context."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Incoming, Reply
from dialogs.engine import DialogEngine
from domain import audit
from domain.bad_ratings import BadRatingLimits
from domain.bookings import BookingLimits
from domain.meetings import MeetingLimits
from domain.monthly_report import ReportSchedule
from domain.policy import Actor
from domain.ratings import RatingLinks
from domain.visits import VisitLimits
from services.uploads import UploadChecker
from storage import applicants
from storage.audit import Entry
from storage.cases import CodeGuard
from storage.db import Database
from storage.models import Applicant, Staff, utcnow
from storage.state import StateStore

if TYPE_CHECKING:
    from services.faq_index import FaqIndex


@dataclass(frozen=True)
class ApplicantLimits:
    """Per-applicant limits against floods, counted in the database."""

    open_questions: int = 5
    daily_applications: int = 3
    # Wrong 查询码 per case and per chat within the window, then a cool-down (storage/cases.py).
    query_codes: CodeGuard = field(default_factory=CodeGuard)


class Consultation(Protocol):
    """The FAQ consultation (handlers/consult.py), wired only where enabled."""

    @property
    def index(self) -> FaqIndex: ...
    async def ask(self, ctx: Context, text: str) -> list[Reply]: ...


@dataclass
class Services:
    db: Database
    state: StateStore
    engine: DialogEngine
    files_dir: Path
    form_font: Path | None = None
    consultation: Consultation | None = None
    web_url: str = ""  # the web chat's address, for links and QR codes on printed forms
    limits: ApplicantLimits = field(default_factory=ApplicantLimits)
    uploads: UploadChecker = field(default_factory=UploadChecker)
    bad_ratings: BadRatingLimits = field(default_factory=BadRatingLimits)
    bookings: BookingLimits = field(default_factory=BookingLimits)
    visits: VisitLimits = field(default_factory=VisitLimits)
    meetings: MeetingLimits = field(default_factory=MeetingLimits)
    reports: ReportSchedule = field(default_factory=ReportSchedule)
    rating_links: RatingLinks = field(default_factory=RatingLinks)
    clock: Callable[[], dt.datetime] = utcnow  # tests set a fake one


@dataclass
class Context:
    """One update being handled: who, what they sent, and their conversation state."""

    event: Incoming
    services: Services
    state: dict[str, Any]
    staff: Staff | None = None  # set with actor when the route asks who the sender is
    actor: Actor | None = None
    identified: bool = False  # the sender was looked up (once per update, by the router)
    applicant: Applicant | None = None  # set when the route asks for the applicant
    applicant_known: bool = False  # the applicant was looked up (or enrolled) this update
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def audits(self) -> bool:
        """Whether this update writes a 操作日志 record: a staff member's, on a route that
        resolved them (the router has set the record's default note)."""
        return self.actor is not None and audit.DEFAULT in self.extra

    def audit_entry(self, done: audit.Note) -> Entry:
        """The record of this update: who, from which channel and address, what."""
        event = self.event
        if self.actor is None:
            raise RuntimeError("audit_entry() without an actor")
        return audit.entry(self.actor, done, event.user.channel, event.client)

    @asynccontextmanager
    async def transaction(self, immediate: bool = False) -> AsyncIterator[AsyncSession]:
        """A write transaction; on a staff update it also holds the update's 操作日志 record,
        appended just before the commit, so the action and its record commit together or not
        at all. A note made inside a block that fails is taken back (nothing was done)."""
        if not self.audits or self.extra.get(audit.WRITTEN):
            async with self.services.db.transaction(immediate) as session:
                yield session
            return
        before = self.extra.get(audit.NOTE)
        try:
            # Immediate: SQLite takes the writer lock at BEGIN, as the audit append needs.
            async with self.services.db.transaction(immediate=True) as session:
                yield session
                found = self.extra.get(audit.NOTE)
                done = found if isinstance(found, audit.Note) else self.extra[audit.DEFAULT]
                await audit.append(session, self.audit_entry(done))
        except BaseException:
            if before is None:
                self.extra.pop(audit.NOTE, None)
            else:
                self.extra[audit.NOTE] = before
            raise
        self.extra[audit.WRITTEN] = True

    def sender(self) -> Applicant | None:
        """The applicant behind this chat (None: never seen), as the router looked it up for a
        route declared with applicant=True."""
        if not self.applicant_known:
            raise RuntimeError("sender() on a route not declared with applicant=True")
        return self.applicant

    async def enrol(self, session: AsyncSession, lock: bool = False) -> Applicant:
        """The sender as an applicant, created on first contact, in the caller's transaction;
        `lock` holds the row until it ends, so their limits are counted one at a time."""
        user = self.event.user
        applicant = await applicants.get_or_create(session, user.channel, user.chat_id, lock=lock)
        self.applicant, self.applicant_known = applicant, True
        return applicant
