"""Typed SQLAlchemy models of the domain (see DESIGN.md for the glossary)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Role(StrEnum):
    WINDOW = "window"
    SPECIALIST = "specialist"
    CHIEF = "chief"
    LEADER = "leader"
    ADMIN = "admin"
    AGENT = "agent"  # 第三方专业机构's people: only assigned work, while the contract runs


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    NEEDS_SUPPLEMENT = "needs_supplement"
    REJECTED = "rejected"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class ProjectKind(StrEnum):
    GENERAL = "general"
    KEY = "key"


class ActorKind(StrEnum):
    APPLICANT = "applicant"
    STAFF = "staff"
    SYSTEM = "system"


class QuestionStatus(StrEnum):
    OPEN = "open"
    FORWARDED = "forwarded"
    ANSWERED = "answered"
    CLOSED = "closed"


class RatingLevel(StrEnum):
    """好差评's five levels, best first (national rules for rating government services)."""

    VERY_SATISFIED = "very_satisfied"  # 非常满意
    SATISFIED = "satisfied"  # 满意
    BASIC = "basic"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意
    VERY_DISSATISFIED = "very_dissatisfied"  # 非常不满意


# The old 1–5 回访 score of each level (5 best): kept in `score` for averages and old buttons.
LEVEL_SCORES = {level: 5 - index for index, level in enumerate(RatingLevel)}
BAD_LEVELS = (RatingLevel.DISSATISFIED, RatingLevel.VERY_DISSATISFIED)  # 差评


class BadRatingStatus(StrEnum):
    """A 差评 item: 回访核实 → 整改 and 反馈 → 复核 by 政务服务中心 → closed."""

    VERIFYING = "verifying"
    FIXING = "fixing"
    REVIEWING = "reviewing"
    CLOSED = "closed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


# Statuses that still need work, spelled out in the partial indexes below and rendered as the
# same literals by the queries they serve (storage/cases.py, storage/questions.py), so that
# PostgreSQL and SQLite can prove the query's filter implies the index's.
ACTIVE_CASE_STATUSES = (
    CaseStatus.SUBMITTED,
    CaseStatus.ACCEPTED,
    CaseStatus.IN_PROGRESS,
    CaseStatus.NEEDS_SUPPLEMENT,
    CaseStatus.COMPLETED,
    CaseStatus.DELIVERED,
)
OPEN_QUESTION_STATUSES = (QuestionStatus.OPEN, QuestionStatus.FORWARDED)
QUESTION_ESCALATED = 2  # escalation_level once the chief has been told


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


CASES_ACTIVE = _in("status", ACTIVE_CASE_STATUSES)
QUESTIONS_OPEN = _in("status", OPEN_QUESTION_STATUSES)
QUESTIONS_CHASED = f"{QUESTIONS_OPEN} AND escalation_level < {QUESTION_ESCALATED}"
CLOCK_RUNNING = (CaseStatus.SUBMITTED, CaseStatus.ACCEPTED, CaseStatus.IN_PROGRESS)
# A stale due_at left on a finished case (before the clock stopped on every exit) stays out.
CASES_REMINDABLE = f"reminded_at IS NULL AND due_at IS NOT NULL AND {_in('status', CLOCK_RUNNING)}"


def _partial(name: str, *columns: str, where: str) -> Index:
    """An index over the rows `where` holds, on PostgreSQL and SQLite alike."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    leading: Mapped[bool] = mapped_column(Boolean, default=False)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    staff: Mapped[list[Staff]] = relationship(back_populates="department", order_by="Staff.id")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    name: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(120))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    # Until when a browser bound with /bind stays signed in (the latest device expiry); the
    # web chat is a second channel beside `channel`, never instead of it.
    web_until: Mapped[dt.datetime | None]
    # The person's UserID in WeCom (企业微信 / 政务微信): a third channel beside the others.
    wecom_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # WeCom answered 81013 (not visible to the app): no notices there until they write again.
    wecom_unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))  # agents only

    department: Mapped[Department] = relationship(back_populates="staff", lazy="joined")
    agency: Mapped[Agency | None] = relationship(lazy="joined")

    @property
    def web_chat_id(self) -> str | None:
        """The staff member's chat in the web channel while a browser is signed in."""
        if self.web_until is None or self.web_until <= utcnow():
            return None
        return staff_web_chat(self.id)

    def chats(self) -> list[tuple[str, str]]:
        """Every bound chat as (channel, chat id): the bound channel, the web, then WeCom."""
        bound = [(self.channel, self.chat_id)] if self.channel and self.chat_id else []
        web = self.web_chat_id
        if web is not None and (WEB_CHANNEL, web) not in bound:
            bound.append((WEB_CHANNEL, web))
        if self.wecom_userid and not self.wecom_unreachable:
            bound.append((WECOM_CHANNEL, self.wecom_userid))
        return bound


WEB_CHANNEL = "web"
WECOM_CHANNEL = "wecom"


def staff_web_chat(staff_id: int) -> str:
    """The web chat id of a staff member: one per person, shared by their browsers."""
    return f"staff-{staff_id}"


class Agency(Base):
    """第三方专业机构 hired by a lead unit under a procurement contract (roster.yaml)."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    contract_number: Mapped[str] = mapped_column(String(60))
    contract_start: Mapped[dt.date]
    contract_end: Mapped[dt.date]  # the last day its agents may work (China time)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))  # hiring unit
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    warned_for: Mapped[dt.date | None]  # the contract end the admins were warned of
    ended_for: Mapped[dt.date | None]  # the contract end its agents were told of


class AgencyAssignment(Base):
    """An agency (and optionally one of its agents) put on a case or a key project."""

    __tablename__ = "agency_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # None: every agent
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    key_project_id: Mapped[int | None] = mapped_column(ForeignKey("key_projects.id"), index=True)
    assigned_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    ended_at: Mapped[dt.datetime | None]

    agency: Mapped[Agency] = relationship(lazy="joined")


class OpinionDraft(Base):
    """经办人意见 drafted by an agent; it becomes the case's opinion once staff confirm it."""

    __tablename__ = "opinion_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    confirmed_at: Mapped[dt.datetime | None]


class AuditRecord(Base):
    """操作日志: who did or saw what, when, where from. Append-only: ids, never personal data;
    no foreign keys, so purging a case or a person leaves its records; each day's records
    form a hash chain (prev_hash → hash) that `bangdaiban audit verify` checks."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_case", "case_id", "id"),
        Index("ix_audit_log_actor", "actor_id", "id"),
        Index("ix_audit_log_day", "day", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    day: Mapped[str] = mapped_column(String(10))  # China date: the chain's unit
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None]
    role: Mapped[str | None] = mapped_column(String(20))
    unit_id: Mapped[int | None]
    agency_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(60))
    case_id: Mapped[int | None]
    case_number: Mapped[str | None] = mapped_column(String(20))
    key_project_id: Mapped[int | None]
    applicant_id: Mapped[int | None]
    fields: Mapped[list[Any]] = mapped_column(default=list)  # which fields were shown or set
    channel: Mapped[str | None] = mapped_column(String(20))
    client: Mapped[str | None] = mapped_column(String(64))  # the client address, where known
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class StaffDevice(Base):
    """A browser bound to a staff member with /bind: its signed cookie names this row."""

    __tablename__ = "staff_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))  # in the cookie too: a row id alone is no key
    label: Mapped[str | None] = mapped_column(String(120))  # the browser, as it named itself
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class StaffInvite(Base):
    __tablename__ = "staff_invites"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class Applicant(Base):
    __tablename__ = "applicants"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(120))
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str | None] = mapped_column(String(20))  # where they came from (QR tag)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CatalogItem(Base):
    """An approval item (申请事项) an applicant can ask the service to handle."""

    __tablename__ = "catalog_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    sort: Mapped[int] = mapped_column(Integer, default=0)

    department: Mapped[Department] = relationship()


class CaseCounter(Base):
    """Last case number issued per year; incremented under a row lock."""

    __tablename__ = "case_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # A draft token names a submission of one applicant only.
        UniqueConstraint("applicant_id", "submission_key"),
        # /cases: an applicant's cases newest first, a keyset page at a time.
        Index("ix_cases_applicant_created", "applicant_id", "created_at", "id"),
        # /inbox: the active cases, oldest change first.
        _partial("ix_cases_active", "updated_at", "id", where=CASES_ACTIVE),
        # The scheduler: clocks not yet reminded, and 回访 waiting since follow_up_asked_at.
        _partial("ix_cases_due", "due_at", "id", where=CASES_REMINDABLE),
        Index("ix_cases_follow_up", "status", "follow_up_asked_at"),
        Index("ix_cases_created", "created_at"),  # 服务统计: cases received in a range
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    submission_key: Mapped[str] = mapped_column(String(64))
    query_code: Mapped[str | None] = mapped_column(String(8))  # 查询码: proves the case is yours
    # Wrong 查询码 guesses in the current window (storage/cases.py check_query_code).
    code_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    code_failed_at: Mapped[dt.datetime | None]
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"))
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.SUBMITTED)
    project_kind: Mapped[str] = mapped_column(String(10))
    company: Mapped[str] = mapped_column(String(100))
    credit_code: Mapped[str | None] = mapped_column(String(18))
    project_name: Mapped[str] = mapped_column(String(100))
    project_code: Mapped[str | None] = mapped_column(String(40))
    contact_name: Mapped[str] = mapped_column(String(40))
    contact_phone: Mapped[str] = mapped_column(String(32))
    project_summary: Mapped[str] = mapped_column(Text)
    other_items: Mapped[str | None] = mapped_column(Text)
    # Staff-only fields: never rendered into anything an applicant receives.
    handler_opinion: Mapped[str | None] = mapped_column(Text)
    leader_instruction: Mapped[str | None] = mapped_column(Text)
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # asked to instruct
    # Working-day clock of the current state; paused while waiting on the applicant.
    due_at: Mapped[dt.datetime | None]
    paused_seconds: Mapped[int | None]  # time left on the clock while needs_supplement
    reminded_at: Mapped[dt.datetime | None]
    follow_up_asked_at: Mapped[dt.datetime | None]  # delivered: the 回访 wait runs from here
    # Figures for the statistics, set as the case moves (SQL aggregates never walk events):
    # whole working days from 提交 to 受理 and to 办结, and whether a clock ever ran out.
    accepted_workdays: Mapped[int | None]
    completed_workdays: Mapped[int | None]
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    applicant: Mapped[Applicant] = relationship(lazy="joined")
    items: Mapped[list[CaseItem]] = relationship(
        back_populates="case", order_by="CaseItem.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseViewer(Base):
    """Another chat that proved with the 查询码 that it may follow a case."""

    __tablename__ = "case_viewers"
    __table_args__ = (UniqueConstraint("case_id", "applicant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseItem(Base):
    __tablename__ = "case_items"
    # A unit's staff see the cases with an item of their unit (/inbox).
    __table_args__ = (Index("ix_case_items_department", "department_id", "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    catalog_item_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_items.id"))
    name: Mapped[str] = mapped_column(String(500))  # 其他事项 as typed (the dialog allows 500)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")

    case: Mapped[Case] = relationship(back_populates="items")
    department: Mapped[Department | None] = relationship(lazy="joined")


class CaseEvent(Base):
    __tablename__ = "case_events"
    # The statistics count the events of one kind in a date range.
    __table_args__ = (Index("ix_case_events_status_at", "to_status", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None]
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    visible_to_applicant: Mapped[bool] = mapped_column(Boolean, default=True)

    case: Mapped[Case] = relationship(back_populates="events")


class StoredFile(Base):
    """A file kept on disk by content hash."""

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    mime: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseFile(Base):
    __tablename__ = "case_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    uploaded_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FaqEntry(Base):
    __tablename__ = "faq_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    question: Mapped[str] = mapped_column(Text)
    phrasings: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    department_code: Mapped[str | None] = mapped_column(String(40))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FaqSynonyms(Base):
    __tablename__ = "faq_synonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    terms: Mapped[list[Any]] = mapped_column(default=list)


class Question(Base):
    """A consultation owned by its first responder until the enterprise has an answer."""

    __tablename__ = "questions"
    __table_args__ = (
        _partial("ix_questions_open", "id", where=QUESTIONS_OPEN),  # /open
        _partial("ix_questions_chased", "created_at", "id", where=QUESTIONS_CHASED),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=QuestionStatus.OPEN)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[dt.datetime | None]
    # Set at the first answer, for the statistics: whole hours it took, within the limit or not.
    answer_hours: Mapped[int | None]
    answered_on_time: Mapped[bool | None]


class ConsultationRecord(Base):
    """One consultation's outcome (FAQ answered, choice offered, routed), for the statistics."""

    __tablename__ = "consultations"
    __table_args__ = (Index("ix_consultations_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(10))


class StatsDaily(Base):
    """服务统计's daily rollup: how many counted events (cases received, accepted, rejected,
    completed, delivered; working days to 受理 / 办结 as histograms; completed on time;
    好差评 per level) fell on one China-local day, per unit and channel. Incremented in the
    transaction of each event (storage/rollup.py), so /desk/stats sums a few thousand small
    rows instead of reading every event of the year. unit_id 0 is the whole service (a case
    with items of two units counts once there and once under each unit)."""

    __tablename__ = "stats_daily"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # histograms only
    count: Mapped[int]


class QuestionMessage(Base):
    __tablename__ = "question_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    author_kind: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Announcement(Base):
    __tablename__ = "announcements"
    __table_args__ = (_partial("ix_announcements_unreported", "id", where="reported_at IS NULL"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    segment: Mapped[str] = mapped_column(String(40), default="subscribers")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reported_at: Mapped[dt.datetime | None]  # the delivery report is queued (or not needed)


class OutboxMessage(Base):
    """A notification written with the change that causes it, delivered by the worker."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "channel", "status", "id"),
        Index("ix_outbox_chat_queue", "channel", "chat_id", "status", "id"),
        _partial(
            "ix_outbox_announcement",
            "announcement_id",
            "status",
            where="announcement_id IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list[Any]] = mapped_column(default=list)
    document: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    # The announcement a broadcast row belongs to: its delivery counts are one index range.
    announcement_id: Mapped[int | None]


class CaseRating(Base):
    """好差评: the applicant's one rating of a delivered case (一事一评), per handling staff."""

    __tablename__ = "case_ratings"
    __table_args__ = (Index("ix_case_ratings_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    level: Mapped[str] = mapped_column(String(20))  # RatingLevel
    score: Mapped[int]  # LEVEL_SCORES[level]
    points: Mapped[list[Any]] = mapped_column(default=list)  # second-level points or reasons
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(20))  # the chat's channel, or "link"
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RatingLink(Base):
    """A one-time link that opens the rating of one case without the chat identity (printed
    with the result, sent with the delivered notice): only its SHA-256 is kept; it is spent
    by the rating it gives and expires."""

    __tablename__ = "rating_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class BadRating(Base):
    """A 差评 item owned by the case's responsible unit, followed up to 复核."""

    __tablename__ = "bad_ratings"
    __table_args__ = (
        Index("ix_bad_ratings_status", "status", "id"),
        Index("ix_bad_ratings_opened", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("case_ratings.id"), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(String(20), default=BadRatingStatus.VERIFYING)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    verify_due_at: Mapped[dt.datetime]
    fix_due_at: Mapped[dt.datetime]
    verified_at: Mapped[dt.datetime | None]
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    verify_note: Mapped[str | None] = mapped_column(Text)
    fixed_at: Mapped[dt.datetime | None]  # 整改 done and 反馈 sent to the enterprise
    fixed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    fix_note: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[dt.datetime | None]
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    review_note: Mapped[str | None] = mapped_column(Text)
    # 0: on time; 1: 核实 missed (the unit's chief told); 2: 反馈 missed (and 政务服务中心).
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None]  # the owners were reminded of the 反馈 deadline
    fix_level: Mapped[str | None] = mapped_column(String(20))  # the enterprise rates the fix
    fix_rated_at: Mapped[dt.datetime | None]


class KeyProject(Base):
    """重点项目: one-to-one service for a key industrial project, from negotiation on."""

    __tablename__ = "key_projects"
    __table_args__ = (Index("ix_key_projects_follow_up", "next_follow_up_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    company: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(20), default="negotiating")
    service_plan: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    last_contact_at: Mapped[dt.datetime | None]
    next_follow_up_at: Mapped[dt.datetime | None]
    follow_up_reminded_at: Mapped[dt.datetime | None]  # 回访 reminder sent for the due date
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    members: Mapped[list[KeyProjectMember]] = relationship(
        order_by="KeyProjectMember.id", cascade="all, delete-orphan"
    )
    milestones: Mapped[list[Milestone]] = relationship(
        order_by="Milestone.id", cascade="all, delete-orphan"
    )
    problems: Mapped[list[Problem]] = relationship(
        order_by="Problem.id", cascade="all, delete-orphan"
    )


class KeyProjectMember(Base):
    __tablename__ = "key_project_members"
    __table_args__ = (UniqueConstraint("key_project_id", "staff_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_project_id: Mapped[int] = mapped_column(ForeignKey("key_projects.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))


class Milestone(Base):
    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_project_id: Mapped[int] = mapped_column(ForeignKey("key_projects.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    due_on: Mapped[dt.date | None]
    done_at: Mapped[dt.datetime | None]


class Problem(Base):
    """A problem on the ladder: 1 帮代办人员, 2 首席责任人, 3 联席会议, 4 委领导专题会议."""

    __tablename__ = "problems"
    __table_args__ = (Index("ix_problems_open", "status", "level_since"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_project_id: Mapped[int] = mapped_column(ForeignKey("key_projects.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="open")
    raised_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    level_since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    # A task a 联席会议 handed out (交办): who carries it and by when.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    due_on: Mapped[dt.date | None]


class WebMessage(Base):
    """One message of a web chat's history (both directions), shown again after a reload."""

    __tablename__ = "web_messages"
    __table_args__ = (Index("ix_web_messages_chat", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named job one process runs at a time (the scheduler; a channel's delivery on SQLite)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[dt.datetime]


class MonthlyReport(Base):
    """A month whose 工作简报 went to the lead units' administrators: one row, so several
    workers (or a restarted one) never send it twice."""

    __tablename__ = "monthly_reports"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


class WeChatFollower(Base):
    """A WeChat user (openid) of the Official Account: where they came from, when they wrote."""

    __tablename__ = "wechat_followers"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    scene: Mapped[str | None] = mapped_column(String(64))  # the parametric QR code scanned first
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    last_message_at: Mapped[dt.datetime | None]  # opens the 48-hour customer-service window
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WeComCard(Base):
    """A 模板卡片 sent to one staff member in WeCom: what its buttons mean (never taken from
    the client), the code that updates it, and who acted on its notice first."""

    __tablename__ = "wecom_cards"

    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # The notice the card belongs to: every copy of one notice (window staff) shares it.
    notice: Mapped[str] = mapped_column(String(200), index=True)
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    response_code: Mapped[str | None] = mapped_column(String(200))  # once, within 72 h
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime | None]  # the card was changed to say who acted
    done_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    done_label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# -- 预约洽谈: rooms, bookings and the units that attend -------------------------------------


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    ATTENDED = "attended"  # 已到
    ABSENT = "absent"  # 未到


# A slot holds one booking that is not cancelled; the same literal in migration 0300.
BOOKINGS_HOLDING = "status <> 'cancelled'"


class Room(Base):
    """对接洽谈室: loaded from data/rooms.yaml; hours are [start, end] pairs of "HH:MM"."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    capacity: Mapped[int] = mapped_column(Integer, default=6)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=60)
    hours: Mapped[list[Any]] = mapped_column(default=list)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Booking(Base):
    """预约洽谈: one room at one start time, for an applicant or a caller booked at the window."""

    __tablename__ = "bookings"
    __table_args__ = (
        # Never double-booked: the database refuses a second holding booking of a slot.
        Index(
            "uq_bookings_slot",
            "room_id",
            "starts_at",
            unique=True,
            postgresql_where=text(BOOKINGS_HOLDING),
            sqlite_where=text(BOOKINGS_HOLDING),
        ),
        UniqueConstraint("applicant_id", "submission_key"),
        Index("ix_bookings_starts", "starts_at", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # 预约号
    submission_key: Mapped[str] = mapped_column(String(64))
    applicant_id: Mapped[int | None] = mapped_column(ForeignKey("applicants.id"), index=True)
    booked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # at the window
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(20), default=BookingStatus.BOOKED)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    key_project_id: Mapped[int | None] = mapped_column(ForeignKey("key_projects.id"))
    subject: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(100))
    contact_name: Mapped[str] = mapped_column(String(40))
    contact_phone: Mapped[str] = mapped_column(String(32))
    record: Mapped[str | None] = mapped_column(Text)  # what was discussed, by staff
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reminded_day_at: Mapped[dt.datetime | None]  # the working day before, 16:00
    reminded_hour_at: Mapped[dt.datetime | None]  # one hour before
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A 联席会议 holds its room's slots with rows of its own: one index keeps both apart.
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id"), index=True)

    room: Mapped[Room] = relationship(lazy="joined")
    applicant: Mapped[Applicant | None] = relationship(lazy="joined")
    units: Mapped[list[BookingUnit]] = relationship(
        order_by="BookingUnit.id", cascade="all, delete-orphan", lazy="selectin"
    )


class BookingUnit(Base):
    """A unit asked to attend a booking; its staff confirm."""

    __tablename__ = "booking_units"
    __table_args__ = (UniqueConstraint("booking_id", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    confirmed_at: Mapped[dt.datetime | None]

    department: Mapped[Department] = relationship(lazy="joined")


# -- 上门服务 and 联席会议 --------------------------------------------------------------------


class VisitStatus(StrEnum):
    PROPOSED = "proposed"  # the team proposed; the enterprise has not answered
    RESCHEDULING = "rescheduling"  # the enterprise proposed another time (wanted_at)
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    ATTENDED = "attended"  # 已上门
    ABSENT = "absent"  # 未成行


class Visit(Base):
    """上门服务: a key project's team visits the enterprise on site."""

    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_starts", "starts_at", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # SF-000001
    key_project_id: Mapped[int] = mapped_column(ForeignKey("key_projects.id"), index=True)
    applicant_id: Mapped[int | None] = mapped_column(ForeignKey("applicants.id"))
    proposed_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=VisitStatus.PROPOSED)
    wanted_at: Mapped[dt.datetime | None]  # the other time the enterprise proposed
    confirmed_at: Mapped[dt.datetime | None]
    record: Mapped[str | None] = mapped_column(Text)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reminded_day_at: Mapped[dt.datetime | None]
    reminded_hour_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    key_project: Mapped[KeyProject] = relationship(lazy="joined")
    applicant: Mapped[Applicant | None] = relationship(lazy="joined")
    units: Mapped[list[VisitUnit]] = relationship(
        order_by="VisitUnit.id", cascade="all, delete-orphan", lazy="selectin"
    )


class VisitUnit(Base):
    """A unit whose people go on the visit; its staff confirm."""

    __tablename__ = "visit_units"
    __table_args__ = (UniqueConstraint("visit_id", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    confirmed_at: Mapped[dt.datetime | None]

    department: Mapped[Department] = relationship(lazy="joined")


class MeetingStatus(StrEnum):
    DRAFT = "draft"  # the caller is choosing the agenda and the units; the room is held
    CALLED = "called"  # the units were invited
    HELD = "held"  # the 会议纪要 is recorded
    CANCELLED = "cancelled"


class Meeting(Base):
    """联席会议 (四(三)): the lead units call the approval departments to 会诊 hard cases."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # LX-000001
    called_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(20), default=MeetingStatus.DRAFT)
    minutes: Mapped[str | None] = mapped_column(Text)  # 会议纪要
    minutes_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    minutes_at: Mapped[dt.datetime | None]
    reminded_day_at: Mapped[dt.datetime | None]
    reminded_hour_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    room: Mapped[Room] = relationship(lazy="joined")
    units: Mapped[list[MeetingUnit]] = relationship(
        order_by="MeetingUnit.id", cascade="all, delete-orphan", lazy="selectin"
    )
    items: Mapped[list[MeetingItem]] = relationship(
        order_by="MeetingItem.id", cascade="all, delete-orphan", lazy="selectin"
    )


class MeetingUnit(Base):
    """A unit invited to a 联席会议; its 首席责任人 confirms who attends."""

    __tablename__ = "meeting_units"
    __table_args__ = (UniqueConstraint("meeting_id", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    confirmed_at: Mapped[dt.datetime | None]
    attendees: Mapped[str | None] = mapped_column(String(200))

    department: Mapped[Department] = relationship(lazy="joined")


class MeetingItem(Base):
    """An agenda item (a key-project problem or a case) and the meeting's decision on it."""

    __tablename__ = "meeting_items"
    __table_args__ = (
        UniqueConstraint("meeting_id", "problem_id"),
        UniqueConstraint("meeting_id", "case_id", name="uq_meeting_items_case"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    problem_id: Mapped[int | None] = mapped_column(ForeignKey("problems.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    decision: Mapped[str | None] = mapped_column(String(20))  # resolved | task | level4 | noted
    note: Mapped[str | None] = mapped_column(Text)
    new_problem_id: Mapped[int | None] = mapped_column(ForeignKey("problems.id"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    decided_at: Mapped[dt.datetime | None]
