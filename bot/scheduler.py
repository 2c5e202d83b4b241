"""Periodic work: the domain's jobs (question reminders and escalations, case time limits,
回访 closing, 差评 deadlines, broadcast reports, the key-project ladder, booking reminders, the
monthly 工作简报) ticked once a minute."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from domain.announcement_reports import report_finished
from domain.bad_ratings import chase_bad_ratings
from domain.bookings import remind_bookings
from domain.case_jobs import chase_cases
from domain.key_projects import escalate_problems, remind_follow_ups
from domain.meetings import remind_meetings
from domain.monthly_report import send_monthly_report
from domain.reminders import QuestionLimits, chase_questions
from domain.visits import remind_visits
from handlers.context import Services
from storage.models import utcnow

log = logging.getLogger(__name__)
Job = Callable[[Services], Awaitable[int]]


async def tick(services: Services, extra: tuple[Job, ...] = ()) -> int:
    """Run every periodic job once; a failing job is logged and the others still run."""
    now = utcnow()
    jobs: list[Job] = [
        lambda s: chase_questions(s, now, QuestionLimits()),
        lambda s: chase_cases(s, now),
        lambda s: chase_bad_ratings(s, now, s.bad_ratings),
        report_finished,
        lambda s: escalate_problems(s, now),
        lambda s: remind_follow_ups(s, now),
        lambda s: remind_bookings(s, now),
        lambda s: remind_visits(s, now),
        lambda s: remind_meetings(s, now),
        lambda s: send_monthly_report(s, now, s.reports),
        *extra,
    ]
    sent = 0
    for job in jobs:
        try:
            sent += await job(services)
        except Exception:
            log.exception("scheduled job failed")
    return sent


async def run(
    services: Services,
    stop: asyncio.Event,
    interval: float = 60.0,
    extra: tuple[Job, ...] = (),
    leader: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Tick every `interval` seconds until `stop` is set; with `leader`, only while it says
    this process leads (bot/delivery.py: one scheduler per database). Each notification
    also has an idempotency key, so even a duplicate tick would send nothing twice."""
    while not stop.is_set():
        if leader is None or await leader():
            await tick(services, extra)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
