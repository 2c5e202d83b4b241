"""Personal-data retention: delete what is past its retention period (see docs/operations.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.models import (
    AgencyAssignment,
    Applicant,
    BadRating,
    Case,
    CaseEvent,
    CaseFile,
    CaseItem,
    CaseRating,
    CaseStatus,
    KeyProject,
    OpinionDraft,
    OutboxMessage,
    OutboxStatus,
    Question,
    QuestionMessage,
    QuestionStatus,
    RatingLink,
    StoredFile,
)

FINISHED_CASES = (CaseStatus.CLOSED, CaseStatus.WITHDRAWN, CaseStatus.REJECTED)
HANDED_OVER = (*FINISHED_CASES, CaseStatus.DELIVERED)  # nothing left to upload or check
ANSWERED_QUESTIONS = (QuestionStatus.ANSWERED, QuestionStatus.CLOSED)
DONE_OUTBOX = (OutboxStatus.SENT, OutboxStatus.DEAD)


@dataclass(frozen=True)
class Cutoffs:
    """Records last changed before these moments are past their retention period."""

    closed_cases: dt.datetime
    answered_questions: dt.datetime
    files: dt.datetime
    outbox_text: dt.datetime
    audit: dt.datetime | None = None  # the 操作日志: kept longer, never with the case


@dataclass
class Purged:
    cases: int = 0
    questions: int = 0
    applicants: int = 0
    files: int = 0
    outbox_texts: int = 0
    audit_records: int = 0


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_cases(session: AsyncSession, before: dt.datetime) -> int:
    """Delete finished cases (closed, withdrawn, rejected) unchanged since `before`, with
    their items, events, file links and rating; a key project keeps its ledger row."""
    ids = list(
        (
            await session.scalars(
                select(Case.id).where(Case.status.in_(FINISHED_CASES), Case.updated_at < before)
            )
        ).all()
    )
    if not ids:
        return 0
    await session.execute(
        update(KeyProject)
        .where(KeyProject.case_id.in_(ids))
        .values(case_id=None)
        .execution_options(synchronize_session=False)
    )
    for child in (  # 差评 before its rating
        CaseItem,
        CaseEvent,
        CaseFile,
        BadRating,
        CaseRating,
        RatingLink,
        AgencyAssignment,
        OpinionDraft,
    ):
        await session.execute(delete(child).where(child.case_id.in_(ids)))
    await session.execute(delete(Case).where(Case.id.in_(ids)))
    return len(ids)


async def purge_questions(session: AsyncSession, before: dt.datetime) -> int:
    """Delete answered or closed questions, and their messages, unchanged since `before`."""
    ids = list(
        (
            await session.scalars(
                select(Question.id).where(
                    Question.status.in_(ANSWERED_QUESTIONS), Question.updated_at < before
                )
            )
        ).all()
    )
    if ids:
        await session.execute(delete(QuestionMessage).where(QuestionMessage.question_id.in_(ids)))
        await session.execute(delete(Question).where(Question.id.in_(ids)))
    return len(ids)


async def purge_applicants(session: AsyncSession, before: dt.datetime) -> int:
    """Delete applicants (chat id and display name) left with no case or question and no
    subscription, first seen before `before`."""
    result = await session.execute(
        delete(Applicant)
        .where(
            Applicant.created_at < before,
            Applicant.subscribed.is_(False),
            ~exists().where(Case.applicant_id == Applicant.id),
            ~exists().where(Question.applicant_id == Applicant.id),
        )
        .execution_options(synchronize_session=False)
    )
    return _count(result)


async def purge_case_files(session: AsyncSession, before: dt.datetime) -> list[str]:
    """Unlink files of cases handed over (or finished) before `before`, then drop every stored
    file no case links to any more; returns their hashes, for the caller to delete from disk
    once committed."""
    handed_over = select(Case.id).where(Case.status.in_(HANDED_OVER), Case.updated_at < before)
    await session.execute(
        delete(CaseFile)
        .where(CaseFile.case_id.in_(handed_over))
        .execution_options(synchronize_session=False)
    )
    orphans = list(
        (
            await session.scalars(
                select(StoredFile.sha256).where(
                    StoredFile.created_at < before,
                    ~exists().where(CaseFile.sha256 == StoredFile.sha256),
                )
            )
        ).all()
    )
    if orphans:
        await session.execute(delete(StoredFile).where(StoredFile.sha256.in_(orphans)))
    return orphans


async def purge_outbox_text(session: AsyncSession, before: dt.datetime) -> int:
    """Blank the text, buttons and document of delivered (or dead) notices older than
    `before`; ids, chat, status and times stay for the record."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.status.in_(DONE_OUTBOX),
            OutboxMessage.created_at < before,
            OutboxMessage.text != "",
        )
        .values(text="", buttons=[], document=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return _count(result)


async def purge(session: AsyncSession, cutoffs: Cutoffs) -> tuple[Purged, list[str]]:
    """Everything past its period, in the caller's transaction; returns the counts and the
    hashes of the stored files to delete from disk after the commit."""
    purged = Purged()
    purged.cases = await purge_cases(session, cutoffs.closed_cases)
    purged.questions = await purge_questions(session, cutoffs.answered_questions)
    purged.applicants = await purge_applicants(
        session, min(cutoffs.closed_cases, cutoffs.answered_questions)
    )
    blobs = await purge_case_files(session, cutoffs.files)
    purged.files = len(blobs)
    purged.outbox_texts = await purge_outbox_text(session, cutoffs.outbox_text)
    if cutoffs.audit is not None:
        purged.audit_records = await audit.purge(session, cutoffs.audit)
    return purged, blobs
