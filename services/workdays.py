"""Chinese working days (holidays and 调休 included) for reminders and escalations.

The official calendar is the chinesecalendar package's, overridden year by year by
data/holidays.yaml (where an operator adds a year as soon as the State Council publishes it).
Past the last covered year, Monday to Friday count as working days and the coverage warning
(`Calendar.coverage_warning`) says so.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chinese_calendar import constants as library

CHINA = dt.timezone(dt.timedelta(hours=8))
OFFICE_OPENS = dt.time(9, 0)
HOLIDAYS = Path(__file__).resolve().parent.parent / "data" / "holidays.yaml"
COVERAGE_DAYS = 60  # warn when fewer days than this ahead are covered
ONE_DAY = dt.timedelta(days=1)


class CalendarError(Exception):
    """data/holidays.yaml cannot be read; the message says where."""


@dataclass(frozen=True)
class CalendarYear:
    """One year's official days off (放假) and weekend working days (调休上班)."""

    year: int
    source: str
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]


class Calendar:
    """Working days by year; a year missing from `years` counts Monday to Friday."""

    def __init__(self, years: Mapping[int, CalendarYear]) -> None:
        self.years = dict(sorted(years.items()))
        self._off = frozenset(d for y in self.years.values() for d in y.holidays)
        self._on = frozenset(d for y in self.years.values() for d in y.workdays)
        # The exceptions to Monday-to-Friday, sorted, so a span is counted with two bisects.
        self._weekdays_off = sorted(d for d in self._off if d.weekday() < 5 and d not in self._on)
        self._weekends_on = sorted(d for d in self._on if d.weekday() >= 5)

    def is_workday(self, day: dt.date) -> bool:
        if day in self._on:
            return True
        return day.weekday() < 5 and day not in self._off

    def covered_until(self, today: dt.date) -> dt.date | None:
        """The last day of the unbroken run of covered years from `today`'s year on."""
        year = today.year
        if year not in self.years:
            return None
        while year + 1 in self.years:
            year += 1
        return dt.date(year, 12, 31)

    def days_covered(self, today: dt.date) -> int:
        """Days after `today` that the official calendar covers (0 when today is not)."""
        last = self.covered_until(today)
        return (last - today).days if last is not None else 0

    def coverage_warning(self, today: dt.date) -> str | None:
        """One line for the log when fewer than COVERAGE_DAYS days ahead are covered."""
        days = self.days_covered(today)
        if days >= COVERAGE_DAYS:
            return None
        last = self.covered_until(today)
        return (
            f"holiday calendar covers only {days} days ahead (until {last or 'before today'}); "
            "add the next year's official days off and working weekends to data/holidays.yaml"
        )

    def add_workdays(self, moment: dt.datetime, days: int) -> dt.datetime:
        """The same clock time `days` working days later (the start day itself does not count)."""
        local = moment.astimezone(CHINA)
        day = local.date()
        remaining = days
        while remaining > 0:
            day += ONE_DAY
            if self.is_workday(day):
                remaining -= 1
        return dt.datetime.combine(day, local.timetz()).astimezone(dt.UTC)

    def count_workdays(self, after: dt.date, until: dt.date) -> int:
        """Working days d with after < d <= until, in constant time plus two bisects."""
        if until <= after:
            return 0
        weekdays = _weekdays_up_to(until.toordinal()) - _weekdays_up_to(after.toordinal())
        off = bisect.bisect_right(self._weekdays_off, until) - bisect.bisect_right(
            self._weekdays_off, after
        )
        on = bisect.bisect_right(self._weekends_on, until) - bisect.bisect_right(
            self._weekends_on, after
        )
        return weekdays - off + on

    def workdays_between(self, start: dt.datetime, end: dt.datetime) -> int:
        """Whole working days that have passed from start to end, the same for a span of a
        day or of years: the largest n with add_workdays(start, n) <= end."""
        if end <= start:
            return 0
        first, last = start.astimezone(CHINA), end.astimezone(CHINA)
        stop = last.date()
        if last.time() < first.time():  # the last day's clock time is not reached yet
            stop -= ONE_DAY
        return self.count_workdays(first.date(), stop)

    def started_before(self, end: dt.datetime, days: int) -> dt.datetime | None:
        """A moment every start with workdays_between(start, end) >= days lies before:
        a database filter for what can be due at `end` (the exact test follows in Python).
        None when `days` <= 0 (every start qualifies)."""
        if days <= 0:
            return None
        # Counting back from end's day, the days-th working day: a start on it or later
        # cannot have `days` whole working days behind it by `end`.
        day, seen = end.astimezone(CHINA).date(), 0
        while True:
            if self.is_workday(day):
                seen += 1
                if seen == days:
                    break
            day -= ONE_DAY
        return dt.datetime.combine(day, dt.time(0), CHINA).astimezone(dt.UTC)

    def next_office_opening(self, moment: dt.datetime) -> dt.datetime:
        """When the window next opens: 9:00 today on a working morning, else the next working
        day."""
        local = moment.astimezone(CHINA)
        day = local.date()
        if self.is_workday(day) and local.time() < OFFICE_OPENS:
            return dt.datetime.combine(day, OFFICE_OPENS, CHINA)
        day += ONE_DAY
        while not self.is_workday(day):
            day += ONE_DAY
        return dt.datetime.combine(day, OFFICE_OPENS, CHINA)


def _weekdays_up_to(ordinal: int) -> int:
    """Monday-to-Friday days among ordinals 1 … ordinal (ordinal 1, 0001-01-01, is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return weeks * 5 + min(rest, 5)


def library_years() -> dict[int, CalendarYear]:
    """The years the chinesecalendar package covers."""
    source = "chinesecalendar package"
    years = {d.year for d in library.holidays} | {d.year for d in library.workdays}
    return {
        year: CalendarYear(
            year,
            source,
            frozenset(d for d in library.holidays if d.year == year),
            frozenset(d for d in library.workdays if d.year == year),
        )
        for year in years
    }


def read_years(path: Path) -> dict[int, CalendarYear]:
    """The years of a holidays.yaml file, checked: every date lies in its year."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CalendarError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise CalendarError(f"{path}: expected years as keys")
    years = {}
    for year, spec in data.items():
        if not isinstance(year, int) or not isinstance(spec, dict) or not spec.get("source"):
            raise CalendarError(f"{path}: year {year!r} needs a source, holidays and workdays")
        days = {kind: frozenset(spec.get(kind) or []) for kind in ("holidays", "workdays")}
        for kind, dates in days.items():
            wrong = [d for d in dates if not isinstance(d, dt.date) or d.year != year]
            if wrong:
                raise CalendarError(f"{path}: {year} {kind}: {wrong[0]} is not a date in {year}")
        years[year] = CalendarYear(
            year, str(spec["source"]).strip(), days["holidays"], days["workdays"]
        )
    return years


def load_calendar(path: Path = HOLIDAYS) -> Calendar:
    """The package's years, overridden by the years in `path`."""
    return Calendar({**library_years(), **read_years(path)})


@functools.cache
def official() -> Calendar:
    """The calendar every process uses, read once from data/holidays.yaml."""
    return load_calendar()


def today_in_china(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).date()


def is_workday(day: dt.date) -> bool:
    """Official calendar where published; beyond it, Monday to Friday."""
    return official().is_workday(day)


def add_workdays(moment: dt.datetime, days: int) -> dt.datetime:
    """The same clock time `days` working days later (the start day itself does not count)."""
    return official().add_workdays(moment, days)


def workdays_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole working days that have passed from start to end."""
    return official().workdays_between(start, end)


def next_office_opening(moment: dt.datetime) -> dt.datetime:
    """When the window next opens: 9:00 today on a working morning, else the next working day."""
    return official().next_office_opening(moment)


def started_before(end: dt.datetime, days: int) -> dt.datetime | None:
    """Every start `days` working days or more before `end` lies before this moment."""
    return official().started_before(end, days)
