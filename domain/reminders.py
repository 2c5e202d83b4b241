"""Time limits of the first-responder rule: remind the owner, then escalate to the chief."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.texts import render
from domain.notices import notify_question_staff
from services.workdays import started_before, workdays_between
from storage import questions, roster
from storage.db import Database
from storage.models import QUESTION_ESCALATED, Question, Staff

log = logging.getLogger(__name__)
REMINDED, ESCALATED = questions.REMINDED, QUESTION_ESCALATED
BATCH = 100  # questions read and changed per transaction
MAX_BATCHES = 10  # per tick: a backlog is worked off over several ticks


class Services(Protocol):
    """What the job needs of the app's services."""

    @property
    def db(self) -> Database: ...


@dataclass(frozen=True)
class QuestionLimits:
    remind_after: dt.timedelta = dt.timedelta(hours=4)
    escalate_after_workdays: int = 1


def keep_answer_figures(question: Question, now: dt.datetime) -> None:
    """At a question's first answer: whole hours it took, and whether it came before the
    chief would be told (the time limit of the first-responder rule)."""
    question.answer_hours = int((now - question.created_at).total_seconds() // 3600)
    limit = QuestionLimits().escalate_after_workdays
    question.answered_on_time = workdays_between(question.created_at, now) < limit


async def chase_questions(services: Services, now: dt.datetime, limits: QuestionLimits) -> int:
    """Send due reminders and escalations once each; returns how many were sent. Only the
    questions that can be due now are read, oldest first, BATCH at a time, at most
    MAX_BATCHES batches a tick (the rest stay due for the next tick)."""
    escalate_before = started_before(now, limits.escalate_after_workdays)
    remind_until = now - limits.remind_after
    sent, cursor = 0, None
    for _ in range(MAX_BATCHES):
        async with services.db.transaction() as session:
            batch = await questions.chased(session, escalate_before, remind_until, cursor, BATCH)
            if not batch:
                break
            cursor = (batch[-1].created_at, batch[-1].id)
            sent += await _chase_batch(session, batch, now, limits)
        if len(batch) < BATCH:
            break
    return sent


async def _chase_batch(
    session: AsyncSession, batch: list[Question], now: dt.datetime, limits: QuestionLimits
) -> int:
    """Remind or escalate each question of the batch that is due; owners and chiefs are read
    once for the whole batch."""
    owners = await questions.staff_by_ids(session, {q.owner_id for q in batch if q.owner_id})
    escalating = {
        q.id for q in batch if workdays_between(q.created_at, now) >= limits.escalate_after_workdays
    }
    chiefs: dict[int, Staff] = {}
    lead_chief = None
    if escalating:
        lead = await roster.department_by_code(session, roster.LEAD_UNIT)
        units = {q.department_id for q in batch if q.id in escalating and q.department_id}
        chiefs = await questions.chiefs_of(session, units | ({lead.id} if lead else set()))
        lead_chief = chiefs.get(lead.id) if lead else None
    sent = 0
    for question in batch:
        owner = owners.get(question.owner_id or 0)
        if owner is None:
            continue
        if question.id in escalating:
            chief = chiefs.get(question.department_id or 0) or lead_chief
            if chief is not None:
                text = render(
                    "staff/question_escalated.j2",
                    question=question,
                    owner=owner,
                    days=limits.escalate_after_workdays,
                )
                notify_question_staff(session, chief, text, question, "escalated", owner_view=False)
                sent += 1
            question.escalation_level = ESCALATED
            log.info("question escalated id=%s", question.id)
        elif (
            question.escalation_level < REMINDED
            and now - question.created_at >= limits.remind_after
        ):
            hours = int(limits.remind_after.total_seconds() // 3600)
            text = render("staff/question_reminder.j2", question=question, hours=hours)
            notify_question_staff(session, owner, text, question, "reminded")
            question.escalation_level = REMINDED
            sent += 1
    return sent
