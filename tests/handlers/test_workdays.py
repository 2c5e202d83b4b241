"""Working days: the official calendar, the operator's overrides, and coverage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.workdays import (
    CHINA,
    HOLIDAYS,
    Calendar,
    CalendarError,
    library_years,
    load_calendar,
    read_years,
)

# Test data only: a made-up year, to show that a year in the file takes effect.
OVERRIDE = """
2027:
  source: test fixture
  holidays: [2027-01-01, 2027-02-08, 2027-02-09]
  workdays: [2027-02-06]
"""


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), CHINA)


@pytest.fixture
def override(tmp_path: Path) -> Path:
    path = tmp_path / "holidays.yaml"
    path.write_text(HOLIDAYS.read_text(encoding="utf-8") + OVERRIDE, encoding="utf-8")
    return path


def test_the_shipped_2026_is_the_official_calendar_of_the_package() -> None:
    shipped = read_years(HOLIDAYS)
    assert list(shipped) == [2026]
    assert "国务院办公厅" in shipped[2026].source
    package = library_years()[2026]
    assert shipped[2026].holidays == package.holidays
    assert shipped[2026].workdays == package.workdays


def test_a_year_in_the_file_overrides_the_weekday_fallback(override: Path) -> None:
    calendar = load_calendar(override)
    plain = load_calendar()
    # Without 2027 in the file, New Year's Day 2027 (a Friday) counts as a working day.
    assert plain.add_workdays(at("2026-12-31"), 1) == at("2027-01-01").astimezone(dt.UTC)
    assert calendar.add_workdays(at("2026-12-31"), 1) == at("2027-01-04").astimezone(dt.UTC)
    assert not calendar.is_workday(dt.date(2027, 2, 8))
    assert calendar.is_workday(dt.date(2027, 2, 6))  # a Saturday made a working day
    assert calendar.years[2027].source == "test fixture"
    assert calendar.years[2025].source == "chinesecalendar package"


def test_a_date_outside_its_year_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text("2027:\n  source: x\n  holidays: [2026-10-01]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="2026-10-01"):
        read_years(path)


def test_coverage_warning_below_sixty_days(override: Path) -> None:
    plain = load_calendar()
    warning = plain.coverage_warning(dt.date(2026, 11, 29))
    assert warning is not None and "32 days" in warning and "holidays.yaml" in warning
    assert plain.coverage_warning(dt.date(2026, 10, 1)) is None
    assert plain.coverage_warning(dt.date(2027, 1, 5)) is not None  # nothing covered at all
    assert load_calendar(override).coverage_warning(dt.date(2026, 11, 29)) is None


def test_a_one_year_span() -> None:
    calendar = load_calendar()
    expected = len(chinese_calendar.get_workdays(dt.date(2026, 1, 2), dt.date(2026, 12, 31)))
    assert expected == 248
    # 2026-01-02 … 2026-12-31 plus 2027-01-01, a Friday outside the covered years.
    assert calendar.workdays_between(at("2026-01-01"), at("2027-01-01")) == expected + 1
    assert calendar.workdays_between(at("2026-01-01"), at("2027-01-01", 9)) == expected


def reference_between(calendar: Calendar, start: dt.datetime, end: dt.datetime) -> int:
    """The definition: the largest n with add_workdays(start, n) <= end."""
    count = 0
    while calendar.add_workdays(start, count + 1) <= end:
        count += 1
    return count


moments = st.datetimes(
    min_value=dt.datetime(2025, 12, 1),
    max_value=dt.datetime(2027, 1, 31),
    timezones=st.just(dt.UTC),
)


@settings(max_examples=200, deadline=None)
@given(moments, moments)
def test_one_pass_count_agrees_with_the_definition(start: dt.datetime, end: dt.datetime) -> None:
    calendar = load_calendar()
    assert calendar.workdays_between(start, end) == reference_between(calendar, start, end)


@settings(max_examples=200, deadline=None)
@given(moments, moments, st.integers(min_value=0, max_value=8))
def test_the_due_filter_never_leaves_out_a_due_start(
    start: dt.datetime, end: dt.datetime, days: int
) -> None:
    """The scheduler asks the database for starts before `started_before`: none is missed."""
    calendar = load_calendar()
    bound = calendar.started_before(end, days)
    if calendar.workdays_between(start, end) >= days:
        assert bound is None or start < bound
    if bound is not None and start >= bound:
        assert calendar.workdays_between(start, end) < days


def test_a_two_year_span_is_counted_without_walking_the_days() -> None:
    calendar = load_calendar()
    two_years = calendar.workdays_between(at("2025-01-02"), at("2027-01-04"))
    walked = sum(
        calendar.is_workday(dt.date(2025, 1, 2) + dt.timedelta(days=n)) for n in range(1, 733)
    )
    assert two_years == walked
