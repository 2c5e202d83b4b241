"""Questions (咨询) under the first-responder rule: one owner until the enterprise has an answer."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, literal_column, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from storage.cases import literal_in
from storage.models import (
    OPEN_QUESTION_STATUSES,
    QUESTION_ESCALATED,
    Department,
    Question,
    QuestionMessage,
    Role,
    Staff,
    StaffInvite,
    utcnow,
)
from storage.roster import LEAD_UNIT, lead_window_staff

OPEN_STATES = OPEN_QUESTION_STATUSES
REMINDED = 1  # escalation_level once the owner has been reminded
INVITE_BYTES = 16  # 128 random bits
INVITE_LENGTH = 32  # the column's size; longer input is no code of ours


async def create(
    session: AsyncSession,
    applicant_id: int,
    text: str,
    department_id: int | None,
    owner_id: int | None = None,
) -> Question:
    """The question and its first message; `owner_id` is its first responder, if known."""
    question = Question(
        applicant_id=applicant_id, text=text, department_id=department_id, owner_id=owner_id
    )
    session.add(question)
    await session.flush()
    session.add(QuestionMessage(question_id=question.id, author_kind="applicant", text=text))
    return question


_COUNT_OPEN = select(func.count(Question.id)).where(literal_in(Question.status, OPEN_STATES))
_COUNT_OPEN_OF = _COUNT_OPEN.where(Question.applicant_id == bindparam("applicant_id"))

# Built once (every question handed to a person asks it): SQLAlchemy reuses the cache key.
_LAST_ASSIGNED = (
    select(func.max(Question.created_at))
    .where(Question.owner_id == Staff.id)
    .correlate(Staff)
    .scalar_subquery()
)
_FIRST_RESPONDER = (
    lead_window_staff(bindparam("now", type_=Staff.web_until.type))
    .where(Staff.on_duty.is_(True))
    .order_by(_LAST_ASSIGNED.asc().nulls_first(), Staff.id)
    .limit(1)
)


async def first_responder(session: AsyncSession) -> Staff | None:
    """The on-duty window staff member of the lead unit whose last assignment is oldest."""
    return await session.scalar(_FIRST_RESPONDER, {"now": utcnow()})


@dataclass(frozen=True)
class Routing:
    """What handing a question to a person needs, read in one statement."""

    open_questions: int  # the applicant's questions not yet closed
    department_id: int | None  # the unit the FAQ hinted at, if it is active
    department_name: str | None
    owner: Staff | None  # the first responder (first_responder's choice)


_HINTED = aliased(Department)  # not the lead unit the responder query joins
_ROUTING_FACTS = (
    _COUNT_OPEN_OF.scalar_subquery().label("open_questions"),
    select(_HINTED.id)
    .where(_HINTED.code == bindparam("unit"), _HINTED.active.is_(True))
    .scalar_subquery()
    .label("department_id"),
    select(_HINTED.name)
    .where(_HINTED.code == bindparam("unit"), _HINTED.active.is_(True))
    .scalar_subquery()
    .label("department_name"),
)
_ROUTING = _FIRST_RESPONDER.add_columns(*_ROUTING_FACTS)
_ROUTING_NOBODY = select(*_ROUTING_FACTS)  # nobody on duty: the facts alone


async def routing(session: AsyncSession, applicant_id: int, unit_code: str | None) -> Routing:
    """The applicant's open questions, the hinted unit and the first responder: one
    statement (two when nobody is on duty)."""
    values = {"now": utcnow(), "applicant_id": applicant_id, "unit": unit_code or ""}
    row = (await session.execute(_ROUTING, values)).first()
    if row is not None:
        owner, count, department_id, name = row
        return Routing(int(count or 0), department_id, name, owner)
    count, department_id, name = (await session.execute(_ROUTING_NOBODY, values)).one()
    return Routing(int(count or 0), department_id, name, None)


async def get(session: AsyncSession, question_id: int, lock: bool = False) -> Question | None:
    """The question; `lock` holds its row until the transaction ends (for changes)."""
    return await session.get(Question, question_id, with_for_update=lock, populate_existing=lock)


async def unassigned(session: AsyncSession) -> list[Question]:
    query = (
        select(Question)
        .where(Question.owner_id.is_(None), Question.status.in_(OPEN_STATES))
        .order_by(Question.id)
    )
    return list((await session.scalars(query)).all())


async def open_page(
    session: AsyncSession, after: int | None, before: int | None, size: int
) -> list[tuple[Question, str | None]]:
    """A keyset page of the questions not yet closed, oldest first, with the owner's name,
    in one statement (ix_questions_open); one row more when the list goes on in the
    direction of travel (forward after `after`, back before `before`)."""
    query = (
        select(Question, Staff.name)
        .outerjoin(Staff, Staff.id == Question.owner_id)
        .where(literal_in(Question.status, OPEN_STATES))
        .limit(size + 1)
    )
    if before is not None:
        query = query.where(Question.id < before).order_by(Question.id.desc())
    else:
        query = query.order_by(Question.id)
        if after is not None:
            query = query.where(Question.id > after)
    return [(question, name) for question, name in (await session.execute(query)).tuples()]


async def chased(
    session: AsyncSession,
    escalate_before: dt.datetime | None,
    remind_until: dt.datetime,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> list[Question]:
    """Open, owned questions not yet escalated that may be due now: created before
    `escalate_before` (None: any), or not yet reminded and created by `remind_until`; oldest
    first after the cursor (ix_questions_chased), locked so parallel ticks take each once."""
    escalation_due = true() if escalate_before is None else Question.created_at < escalate_before
    reminder_due = and_(Question.escalation_level < REMINDED, Question.created_at <= remind_until)
    latest = None if escalate_before is None else max(escalate_before, remind_until)
    query = (
        select(Question)
        .where(
            literal_in(Question.status, OPEN_STATES),
            Question.escalation_level < literal_column(str(QUESTION_ESCALATED)),
            Question.owner_id.is_not(None),
            or_(escalation_due, reminder_due),
        )
        .order_by(Question.created_at, Question.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if latest is not None:
        query = query.where(Question.created_at <= latest)
    if after is not None:
        query = query.where(tuple_(Question.created_at, Question.id) > after)
    return list((await session.scalars(query)).all())


async def count_open(session: AsyncSession, applicant_id: int | None = None) -> int:
    """Questions not yet closed (of one applicant, when given)."""
    if applicant_id is None:
        return int(await session.scalar(_COUNT_OPEN) or 0)
    return int(await session.scalar(_COUNT_OPEN_OF, {"applicant_id": applicant_id}) or 0)


async def add_message(
    session: AsyncSession, question: Question, author_kind: str, author_id: int | None, text: str
) -> QuestionMessage:
    message = QuestionMessage(
        question_id=question.id, author_kind=author_kind, author_id=author_id, text=text
    )
    session.add(message)
    question.updated_at = utcnow()
    await session.flush()
    return message


async def staff(session: AsyncSession, staff_id: int | None) -> Staff | None:
    if staff_id is None:
        return None
    return await session.scalar(
        select(Staff).options(selectinload(Staff.department)).where(Staff.id == staff_id)
    )


async def specialists(session: AsyncSession, department_code: str) -> list[Staff]:
    """Who takes a forwarded question in a unit: its specialists, else its chief."""
    query = (
        select(Staff)
        .join(Department)
        .where(Department.code == department_code, Staff.active.is_(True))
        .order_by(Staff.id)
    )
    people = list((await session.scalars(query)).all())
    return [s for s in people if s.role == Role.SPECIALIST] or [
        s for s in people if s.role == Role.CHIEF
    ]


async def staff_by_ids(session: AsyncSession, ids: set[int]) -> dict[int, Staff]:
    """Staff by id (with their department), in one statement."""
    if not ids:
        return {}
    found = await session.scalars(select(Staff).where(Staff.id.in_(ids)))
    return {person.id: person for person in found.unique()}


async def chiefs_of(session: AsyncSession, department_ids: set[int]) -> dict[int, Staff]:
    """The active chief of each unit (the first by id where a unit has several)."""
    if not department_ids:
        return {}
    query = (
        select(Staff)
        .where(
            Staff.department_id.in_(department_ids),
            Staff.role == Role.CHIEF,
            Staff.active.is_(True),
        )
        .order_by(Staff.id.desc())
    )
    return {person.department_id: person for person in (await session.scalars(query)).unique()}


async def chief_of(session: AsyncSession, department_id: int | None) -> Staff | None:
    if department_id is None:
        return None
    return await session.scalar(
        select(Staff).where(
            Staff.department_id == department_id, Staff.role == Role.CHIEF, Staff.active.is_(True)
        )
    )


async def create_invite(session: AsyncSession, staff_id: int, valid_for: dt.timedelta) -> str:
    """A one-time code of 128 random bits (26 base32 letters and digits): not guessable."""
    code = base64.b32encode(secrets.token_bytes(INVITE_BYTES)).decode().rstrip("=")
    session.add(StaffInvite(code=code, staff_id=staff_id, expires_at=utcnow() + valid_for))
    return code


async def redeem_invite(
    session: AsyncSession, code: str, now: dt.datetime | None = None
) -> Staff | None:
    """The staff member the code is for, once, before it expires; None otherwise."""
    code = "".join(code.split()).upper()
    if not code or len(code) > INVITE_LENGTH:
        return None
    invite = await session.get(StaffInvite, code, with_for_update=True)
    moment = now or utcnow()
    if invite is None or invite.used_at is not None or invite.expires_at <= moment:
        return None
    invite.used_at = moment
    return await staff(session, invite.staff_id)


async def window_staff(session: AsyncSession) -> list[Staff]:
    query = (
        select(Staff)
        .join(Department)
        .where(Department.code == LEAD_UNIT, Staff.role == Role.WINDOW, Staff.active.is_(True))
        .order_by(Staff.id)
    )
    return list((await session.scalars(query)).all())


async def staff_answers(
    session: AsyncSession, since: dt.datetime | None = None
) -> list[tuple[int, str, str]]:
    """(question id, question, first reply from staff) of routed questions staff answered."""
    first_reply = (
        select(QuestionMessage.question_id, func.min(QuestionMessage.id).label("message_id"))
        .where(QuestionMessage.author_kind == "staff", QuestionMessage.internal.is_(False))
        .group_by(QuestionMessage.question_id)
        .subquery()
    )
    query = (
        select(Question.id, Question.text, QuestionMessage.text)
        .join(first_reply, first_reply.c.question_id == Question.id)
        .join(QuestionMessage, QuestionMessage.id == first_reply.c.message_id)
        .order_by(Question.id)
    )
    if since is not None:
        query = query.where(Question.created_at >= since)
    return [(row[0], row[1], row[2]) for row in await session.execute(query)]
