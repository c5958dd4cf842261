"""Quiet hours: a table a reader can check by hand, and a property over zones and DST days."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caretime.policy.quiet import QuietHours, last_awake_before, next_awake, quiet_until

NIGHT = QuietHours(start=time(21, 0), end=time(8, 0))
NY = "America/New_York"


def _ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(NY)).astimezone(UTC)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-02 02:10", "2026-03-02 08:00"),  # the middle of the night waits for 08:00
        ("2026-03-02 21:00", "2026-03-03 08:00"),  # quiet hours start at 21:00 sharp
        ("2026-03-02 20:59", "2026-03-02 20:59"),  # awake: now
        ("2026-03-02 08:00", "2026-03-02 08:00"),  # awake again at 08:00 sharp
        ("2026-03-08 02:30", "2026-03-08 08:00"),  # spring-forward night (02:30 does not exist)
        ("2026-11-01 01:30", "2026-11-01 08:00"),  # fall-back night
    ],
)
def test_next_awake_moment_in_new_york(local: str, expected: str) -> None:
    assert next_awake(_ny(local), [NY], NIGHT) == _ny(expected)


def test_quiet_until_says_when_a_quiet_moment_ends_and_none_when_awake() -> None:
    assert quiet_until(_ny("2026-03-02 23:00"), NY, NIGHT) == _ny("2026-03-03 08:00")
    assert quiet_until(_ny("2026-03-02 12:00"), NY, NIGHT) is None


def test_quiet_hours_that_do_not_cross_midnight() -> None:
    nap = QuietHours(start=time(13, 0), end=time(14, 0))
    assert next_awake(_ny("2026-03-02 13:30"), [NY], nap) == _ny("2026-03-02 14:00")
    assert next_awake(_ny("2026-03-02 23:30"), [NY], nap) == _ny("2026-03-02 23:30")


def test_two_zones_wait_for_both() -> None:
    # 08:00 in Chicago is 09:00 in New York; 08:00 in New York is still quiet in Chicago.
    found = next_awake(_ny("2026-03-02 06:00"), [NY, "America/Chicago"], NIGHT)
    assert found == _ny("2026-03-02 09:00")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-02 10:00", "2026-03-02 10:00"),  # awake: the moment itself
        ("2026-03-03 07:00", "2026-03-02 20:59"),  # quiet: the evening before, last minute
        ("2026-03-02 21:00", "2026-03-02 20:59"),
    ],
)
def test_last_awake_moment_before(local: str, expected: str) -> None:
    not_before = _ny("2026-03-01 00:00")
    assert last_awake_before(_ny(local), [NY], NIGHT, not_before=not_before) == _ny(expected)


def test_last_awake_before_is_none_when_everything_between_is_quiet() -> None:
    at = _ny("2026-03-03 07:00")
    assert last_awake_before(at, [NY], NIGHT, not_before=_ny("2026-03-02 22:00")) is None


ZONES = ["America/New_York", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
         "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns"]  # fmt: skip
# Around both DST changes in the US and in Europe, and an ordinary day.
DAYS = [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 6, 15, tzinfo=UTC)]  # fmt: skip
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


def _is_quiet(at: datetime, zone: str, quiet: QuietHours) -> bool:
    local = at.astimezone(ZoneInfo(zone)).time()
    if quiet.start == quiet.end:
        return False
    if quiet.start > quiet.end:
        return local >= quiet.start or local < quiet.end
    return quiet.start <= local < quiet.end


def _near_a_clock_change(at: datetime, zone: str) -> bool:
    """Wall times that a clock change skips or repeats are treated as quiet when the quiet
    hours border them (conservatively: a window never grows), so an awake-looking moment
    next to a change may wait a little."""
    tz = ZoneInfo(zone)
    hours = timedelta(hours=3)
    return (at - hours).astimezone(tz).utcoffset() != (at + hours).astimezone(tz).utcoffset()


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.sampled_from(DAYS),
    offset_minutes=st.integers(-36 * 60, 36 * 60),
    start=clock_times,
    end=clock_times,
)
def test_no_moment_returned_is_ever_quiet(
    zone: str, day: datetime, offset_minutes: int, start: time, end: time
) -> None:
    quiet = QuietHours(start=start, end=end)
    at = day + timedelta(minutes=offset_minutes)
    found = next_awake(at, [zone], quiet)
    assert found >= at
    assert not _is_quiet(found, zone, quiet)
    if not _is_quiet(at, zone, quiet) and not _near_a_clock_change(at, zone):
        assert found == at
    before = last_awake_before(at, [zone], quiet, not_before=at - timedelta(days=2))
    assert before is not None
    assert before <= at
    assert not _is_quiet(before, zone, quiet)
