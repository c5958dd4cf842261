"""When reminders go: a table to check by hand, and a property over zones and DST days that
no reminder is ever due inside the patient's quiet hours, and that it is as late as allowed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caretime.booking.reminders import reminder_time
from caretime.policy.quiet import QuietHours

NIGHT = QuietHours(start=time(21, 0), end=time(8, 0))
NY = "America/New_York"
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
)
# Days on which clocks change somewhere in ZONES (2026).
DST_DAYS = (
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
)


def _ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(NY)).astimezone(UTC)


@pytest.mark.parametrize(
    ("visit", "before", "now", "expected"),
    [
        ("2026-03-04 11:00", 24, "2026-03-02 10:00", "2026-03-03 11:00"),  # awake: on time
        ("2026-03-04 09:00", 2, "2026-03-02 10:00", "2026-03-03 20:59"),  # 07:00 is quiet
        ("2026-03-04 07:30", 24, "2026-03-02 10:00", "2026-03-02 20:59"),  # 07:30 is quiet
        ("2026-03-04 09:00", 2, "2026-03-03 22:00", None),  # nothing allowed before 07:00
        ("2026-03-04 11:00", 24, "2026-03-03 12:00", None),  # its moment has passed
        ("2026-03-09 09:00", 24, "2026-03-02 10:00", "2026-03-08 09:00"),  # over spring-forward
        ("2026-03-08 09:00", 2, "2026-03-02 10:00", "2026-03-07 20:59"),  # 07:00 on the DST day
    ],
)
def test_reminder_times_in_new_york(
    visit: str, before: int, now: str, expected: str | None
) -> None:
    at = reminder_time(_ny(visit), timedelta(hours=before), [NY], NIGHT, now=_ny(now))
    assert at == (None if expected is None else _ny(expected))


def _quiet_in(at: datetime, zone: str, quiet: QuietHours) -> bool:
    """An oracle independent of policy.quiet: the wall clock read directly."""
    local = at.astimezone(ZoneInfo(zone)).time()
    if quiet.start == quiet.end:
        return False
    if quiet.start > quiet.end:
        return local >= quiet.start or local < quiet.end
    return quiet.start <= local < quiet.end


def _quiet_anywhere(at: datetime, zones: Sequence[str], quiet: QuietHours) -> bool:
    return any(_quiet_in(at, zone, quiet) for zone in zones)


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(DST_DAYS),
    offset_minutes=st.integers(min_value=-36 * 60, max_value=36 * 60),
    before_minutes=st.sampled_from([30, 120, 24 * 60, 48 * 60]),
    lead_minutes=st.integers(min_value=0, max_value=4 * 24 * 60),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    start_hour=st.integers(min_value=18, max_value=23),
    end_hour=st.integers(min_value=5, max_value=9),
)
def test_a_reminder_is_never_due_in_quiet_hours_and_as_late_as_allowed(
    day: datetime,
    offset_minutes: int,
    before_minutes: int,
    lead_minutes: int,
    zones: list[str],
    start_hour: int,
    end_hour: int,
) -> None:
    quiet = QuietHours(time(start_hour), time(end_hour))
    visit = day + timedelta(minutes=offset_minutes)
    due = visit - timedelta(minutes=before_minutes)
    now = due - timedelta(minutes=lead_minutes)
    at = reminder_time(visit, timedelta(minutes=before_minutes), zones, quiet, now=now)
    if at is None:
        # Only when every minute from now until it was due is quiet somewhere.
        minute = now
        while minute <= due:
            assert _quiet_anywhere(minute, zones, quiet)
            minute += timedelta(minutes=1)
        return
    assert now <= at <= due
    assert not _quiet_anywhere(at, zones, quiet)
    # As late as allowed: every later minute up to when it was due is quiet somewhere.
    later = at + timedelta(minutes=1)
    while later <= due:
        assert _quiet_anywhere(later, zones, quiet)
        later += timedelta(minutes=1)
