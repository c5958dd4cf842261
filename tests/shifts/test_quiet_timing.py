"""When an offer may go out, as pure data: property over zones, quiet hours, channels and
start times around both DST changes (US and EU), checked against an independent reading of
local wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caretime.policy.quiet import QuietHours
from caretime.shifts.quiet import Timing, caregiver_zones, offer_timing

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/St_Johns",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Lord_Howe",
)
# Days around the 2026 DST changes: US (Mar 8, Nov 1), EU (Mar 29, Oct 25), Sydney (Apr 5,
# Oct 4).
DST_DAYS = tuple(
    datetime(2026, month, day, tzinfo=UTC)
    for month, day in ((3, 8), (11, 1), (3, 29), (10, 25), (4, 5), (10, 4))
)
DEFAULT = QuietHours(time(21, 0), time(8, 0))


def is_quiet(at: datetime, zone: str, quiet: QuietHours) -> bool:
    """Independent of policy.quiet: the local wall-clock time inside [start, end)."""
    local = at.astimezone(ZoneInfo(zone)).time().replace(tzinfo=None)
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def _offset_changed(at: datetime, zone: str) -> bool:
    """The zone's UTC offset changed within the hour before `at`."""
    tz = ZoneInfo(zone)
    return at.astimezone(tz).utcoffset() != (at - timedelta(minutes=61)).astimezone(tz).utcoffset()


instants = st.builds(
    lambda day, minutes: day + timedelta(minutes=minutes),
    st.sampled_from(DST_DAYS),
    st.integers(min_value=-2 * 1440, max_value=2 * 1440),
)
quiet_hours = st.one_of(
    st.just(DEFAULT),
    st.builds(
        lambda a, b: QuietHours(time(a // 60, a % 60), time(b // 60, b % 60)),
        st.integers(0, 1439).map(lambda m: m - m % 15),
        st.integers(0, 1439).map(lambda m: m - m % 15),
    ),
)


@settings(max_examples=600, deadline=None)
@given(
    now=instants,
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True).map(tuple),
    quiet=quiet_hours,
    channel=st.sampled_from(("sms", "voice")),
    urgent=st.booleans(),
    starts_in=st.integers(min_value=1, max_value=3 * 1440).map(lambda m: timedelta(minutes=m)),
)
def test_no_contact_inside_quiet_hours_and_none_later_than_needed(
    now: datetime,
    zones: tuple[str, ...],
    quiet: QuietHours,
    channel: str,
    urgent: bool,
    starts_in: timedelta,
) -> None:
    start = now + starts_in
    timing = offer_timing(
        now, zones, quiet, channel=channel, shift_start=start, urgent_overrides=urgent
    )
    if timing.at is None:
        assert any(is_quiet(now, zone, quiet) for zone in zones)
        assert timing.note is not None
        assert timing.note.startswith("not offered")
        return
    overridden = timing.note is not None and "urgent" in timing.note
    if overridden:
        # Only an SMS, only when the tenant allows it, only for a shift starting first.
        assert (channel, urgent, timing.at) == ("sms", True, now)
        return
    assert now <= timing.at < start
    assert not any(is_quiet(timing.at, zone, quiet) for zone in zones)
    if timing.at > now:
        # Held until quiet hours end, not a minute later (an end that falls in a spring-forward
        # gap is read with the offset before it, so it may come up to the gap's length later:
        # never earlier).
        before = timing.at - timedelta(minutes=1)
        assert any(is_quiet(before, zone, quiet) for zone in zones) or any(
            _offset_changed(timing.at, zone) for zone in zones
        )
        assert timing.note is not None
        assert timing.note.startswith("held until")


ONE_AM_NEW_YORK = datetime(2026, 3, 2, 7, 10, tzinfo=UTC)  # 02:10 EST


@pytest.mark.parametrize(
    ("channel", "urgent", "starts_in", "expected", "note"),
    [
        (
            "sms",
            False,
            timedelta(hours=12),
            "2026-03-02T13:00:00+00:00",
            "held until 08:00 local: quiet hours",
        ),
        (
            "voice",
            False,
            timedelta(hours=12),
            "2026-03-02T13:00:00+00:00",
            "held until 08:00 local: quiet hours",
        ),
        (
            "sms",
            True,
            timedelta(hours=12),
            "2026-03-02T13:00:00+00:00",
            "held until 08:00 local: quiet hours",
        ),
        (
            "sms",
            True,
            timedelta(hours=3),
            "2026-03-02T07:10:00+00:00",
            "sent in quiet hours: the shift starts before they end (urgent)",
        ),
        (
            "voice",
            True,
            timedelta(hours=3),
            None,
            "not offered: quiet hours until 08:00 local, after the start",
        ),
        (
            "sms",
            False,
            timedelta(hours=3),
            None,
            "not offered: quiet hours until 08:00 local, after the start",
        ),
    ],
)
def test_a_round_at_0210_new_york_time(
    channel: str, urgent: bool, starts_in: timedelta, expected: str | None, note: str
) -> None:
    timing = offer_timing(
        ONE_AM_NEW_YORK,
        ("America/New_York",),
        DEFAULT,
        channel=channel,
        shift_start=ONE_AM_NEW_YORK + starts_in,
        urgent_overrides=urgent,
    )
    at = None if timing.at is None else timing.at.isoformat()
    assert (at, timing.note) == (expected, note)


def test_outside_quiet_hours_is_now_with_no_note() -> None:
    noon = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    timing = offer_timing(
        noon,
        ("America/New_York",),
        DEFAULT,
        channel="voice",
        shift_start=noon + timedelta(hours=1),
        urgent_overrides=False,
    )
    assert timing == Timing(noon)


@pytest.mark.parametrize(
    ("given", "phone", "shift_tz", "zones"),
    [
        ("Europe/Berlin", "+16172000001", "America/New_York", ("Europe/Berlin",)),
        (None, "+12062000001", "America/New_York", ("America/Los_Angeles",)),
        (None, "+18002000000", "Asia/Tokyo", ("Asia/Tokyo",)),  # toll-free: no zone
    ],
)
def test_zone_given_then_phone_then_the_shift(
    given: str | None, phone: str, shift_tz: str, zones: tuple[str, ...]
) -> None:
    assert caregiver_zones(given, phone, shift_tz) == zones
