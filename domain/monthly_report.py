"""The monthly 工作简报 to the lead units' administrators: on the first working day of each
month (from `send_hour`, China time) the previous month's report goes out through the
outbox, once — a row in monthly_reports is claimed in the same transaction as the notices,
so a second worker, a second tick or a restart sends nothing again. A day missed (the
workers were down) is caught up on the next tick of the month."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from dialogs.texts import render
from domain.notices import Notice, enqueue
from domain.reminders import Services
from services import figures, report
from services.workdays import CHINA, is_workday
from storage import monthly_reports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSchedule:
    send_hour: int = 9  # MONTHLY_REPORT_HOUR: China time on the first working day
    fmt: str = "docx"  # MONTHLY_REPORT_FORMAT: docx (tables, chart images) or xlsx


def first_workday(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 1)
    while not is_workday(day):
        day += dt.timedelta(days=1)
    return day


def month_due(now: dt.datetime, send_hour: int) -> str | None:
    """The month (YYYY-MM) whose report is due at `now`, or None before the first working
    day's `send_hour`."""
    local = now.astimezone(CHINA)
    first = first_workday(local.year, local.month)
    if local.date() < first or (local.date() == first and local.hour < send_hour):
        return None
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return f"{year}-{month:02d}"


async def send_monthly_report(
    services: Services, now: dt.datetime, schedule: ReportSchedule = ReportSchedule()
) -> int:
    """Queue the due month's 工作简报 to each lead-unit administrator; returns notices queued."""
    month = month_due(now, schedule.send_hour)
    if month is None:
        return 0
    year, number = report.parse_month(month)
    async with services.db.transaction() as session:
        claimed = await monthly_reports.claim(session, month, now)
        if claimed is None:
            return 0
        admins = await monthly_reports.lead_unit_admins(session)
        people = [p for p in admins if p.chats()]
        span = figures.month_span(year, number)
        last_day = (span.end - dt.timedelta(seconds=1)).astimezone(CHINA).date()
        found = await figures.gather(session, span, figures.StatsScope(), last_day, months=False)
        text = render("reports/monthly_notice.j2", month=month, figures=found, fmt=schedule.fmt)
        spec = report.report_spec(month, schedule.fmt)
        notices = [Notice(p, text, f"monthly_report:{month}", document=spec) for p in people]
        enqueue(session, notices)
        claimed.recipients = len(notices)
    log.info("monthly report queued month=%s recipients=%s", month, len(notices))
    return len(notices)
