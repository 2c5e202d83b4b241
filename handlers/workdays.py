"""Chinese working days (holidays and 调休 included) for reminders and escalations."""

from __future__ import annotations

import datetime as dt

import chinese_calendar

CHINA = dt.timezone(dt.timedelta(hours=8))
OFFICE_OPENS = dt.time(9, 0)


def is_workday(day: dt.date) -> bool:
    """Official calendar where published; beyond it, Monday to Friday."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def add_workdays(moment: dt.datetime, days: int) -> dt.datetime:
    """The same clock time `days` working days later (the start day itself does not count)."""
    local = moment.astimezone(CHINA)
    day = local.date()
    remaining = days
    while remaining > 0:
        day += dt.timedelta(days=1)
        if is_workday(day):
            remaining -= 1
    return dt.datetime.combine(day, local.timetz()).astimezone(dt.UTC)


def workdays_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole working days that have passed from start to end."""
    count = 0
    while add_workdays(start, count + 1) <= end:
        count += 1
    return count


def next_office_opening(moment: dt.datetime) -> dt.datetime:
    """When the window next opens: 9:00 today on a working morning, else the next working day."""
    local = moment.astimezone(CHINA)
    day = local.date()
    if is_workday(day) and local.time() < OFFICE_OPENS:
        return dt.datetime.combine(day, OFFICE_OPENS, CHINA)
    day += dt.timedelta(days=1)
    while not is_workday(day):
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, OFFICE_OPENS, CHINA)
