"""Time limits of the first-responder rule: remind the owner, then escalate to the chief."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Protocol

from dialogs.texts import render
from domain.notices import notify_question_staff
from services.workdays import workdays_between
from storage import questions, roster
from storage.db import Database
from storage.models import QuestionStatus

log = logging.getLogger(__name__)
REMINDED, ESCALATED = 1, 2


class Services(Protocol):
    """What the job needs of the app's services."""

    @property
    def db(self) -> Database: ...


@dataclass(frozen=True)
class QuestionLimits:
    remind_after: dt.timedelta = dt.timedelta(hours=4)
    escalate_after_workdays: int = 1


async def chase_questions(services: Services, now: dt.datetime, limits: QuestionLimits) -> int:
    """Send due reminders and escalations once each; returns how many were sent."""
    sent = 0
    async with services.db.transaction() as session:
        for question in await questions.open_questions(session):
            if question.owner_id is None or question.status == QuestionStatus.ANSWERED:
                continue
            owner = await questions.staff(session, question.owner_id)
            if owner is None:
                continue
            days = workdays_between(question.created_at, now)
            if question.escalation_level < ESCALATED and days >= limits.escalate_after_workdays:
                chief = await questions.chief_of(session, question.department_id)
                if chief is None:
                    lead = await roster.department_by_code(session, roster.LEAD_UNIT)
                    chief = await questions.chief_of(session, lead.id if lead else None)
                if chief is not None:
                    chief = await questions.staff(session, chief.id)
                    assert chief is not None
                    text = render(
                        "staff/question_escalated.j2",
                        question=question,
                        owner=owner,
                        days=limits.escalate_after_workdays,
                    )
                    notify_question_staff(
                        session, chief, text, question, "escalated", owner_view=False
                    )
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
