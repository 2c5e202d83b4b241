"""Case time limits: remind the handler before a case goes overdue, close 回访 nobody
answered after the limit."""

from __future__ import annotations

import datetime as dt

from dialogs.texts import label, render
from domain import cases as life
from domain.buttons import CaseView
from domain.cases import LIMITS, CaseLimits, CaseNotFound, CaseVerb, StaleAction
from domain.policy import SYSTEM
from domain.reminders import Services
from services import notify
from services.workdays import started_before, workdays_between
from storage import cases, questions, roster

BATCH = 100  # cases read and changed per transaction
MAX_BATCHES = 10  # per job and tick: a backlog is worked off over several ticks


async def chase_cases(services: Services, now: dt.datetime, limits: CaseLimits = LIMITS) -> int:
    """Remind handlers before a case goes overdue; close unanswered 回访 after the limit.
    Only the cases that can be due now are read (indexed filters), a batch at a time."""
    await _close_unanswered_follow_ups(services, now, limits)
    return await _remind_handlers(services, now, limits)


async def _close_unanswered_follow_ups(
    services: Services, now: dt.datetime, limits: CaseLimits
) -> None:
    before = started_before(now, limits.follow_up_close_workdays)
    cursor = None
    for _ in range(MAX_BATCHES):
        async with services.db.transaction(immediate=True) as session:
            batch = await cases.waiting_for_follow_up(session, before, cursor, BATCH)
            for case_id, asked_at in batch:
                if workdays_between(asked_at, now) >= limits.follow_up_close_workdays:
                    try:
                        await life.move(session, case_id, CaseVerb.EXPIRE, SYSTEM, now=now)
                    except (CaseNotFound, StaleAction):  # rated or closed meanwhile
                        continue
        if len(batch) < BATCH:
            break
        cursor = batch[-1][1], batch[-1][0]


async def _remind_handlers(services: Services, now: dt.datetime, limits: CaseLimits) -> int:
    sent, cursor = 0, None
    for _ in range(MAX_BATCHES):
        async with services.db.transaction(immediate=True) as session:
            batch = await cases.due_for_reminder(session, now + limits.remind_before, cursor, BATCH)
            handlers = await questions.staff_by_ids(
                session, {c.handler_id for c in batch if c.handler_id is not None}
            )
            window = (
                await roster.window_recipients(session)
                if any(c.handler_id not in handlers for c in batch)
                else []
            )
            view_label = label("buttons", "handle")
            for case in batch:
                assert case.due_at is not None
                handler = handlers.get(case.handler_id or 0)
                text = render("casework/staff_reminder.j2", case=case)
                view = [[CaseView(case.number).button(view_label)]]
                for person in [handler] if handler else window:
                    notify.to_staff(
                        session, person, text, f"case:{case.number}:due:{case.due_at:%s}", view
                    )
                    sent += 1
                case.reminded_at = now
        if len(batch) < BATCH:
            break
        last = batch[-1]
        assert last.due_at is not None
        cursor = last.due_at, last.id
    return sent
