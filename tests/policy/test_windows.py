# ruff: noqa: E501  (tables of cases read best one case per line)
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from caretime.policy.caps import ContactCaps, next_moment_under_caps
from caretime.policy.windows import contact_windows, explain_outside, local_to_utc
from caretime.tenancy.policy import CallingPolicy

NY, LA, BOISE, PHOENIX = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Boise",
    "America/Phoenix",
)


def calling(**overrides: object) -> CallingPolicy:
    return CallingPolicy.model_validate(overrides)


def every_day(start: str, end: str) -> dict[str, list[dict[str, str]]]:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {day: [{"start": start, "end": end}] for day in days}


WEEKDAYS_ONLY = {
    d: [{"start": "09:00", "end": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
}


def windows_on(day: str, zones: tuple[str, ...], policy: CallingPolicy, state: str | None = None):
    local_midnight = datetime.combine(date.fromisoformat(day), time(0), ZoneInfo(zones[0]))
    start = local_midnight.astimezone(UTC)
    return contact_windows(zones, policy, start=start, end=start + timedelta(days=1), state=state)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "day", "zones", "state", "policy", "expected"),
    [
        ("weekday, default 09-17", "2026-03-02", (NY,), None, calling(), [("2026-03-02T14:00", "2026-03-02T22:00")]),
        ("saturday, tenant calls weekdays only", "2026-03-07", (NY,), None, calling(windows=WEEKDAYS_ONLY), []),
        ("federal holiday skipped", "2026-05-25", (NY,), None, calling(), []),
        ("holiday kept when tenant says so", "2026-05-25", (NY,), None, calling(skip_holidays=False), [("2026-05-25T13:00", "2026-05-25T21:00")]),
        ("federal limit cuts a wide tenant window", "2026-03-02", (NY,), None, calling(windows=every_day("06:00", "23:00")), [("2026-03-02T13:00", "2026-03-03T02:00")]),
        ("Florida ends at 20:00", "2026-03-02", (NY,), "FL", calling(windows=every_day("09:00", "21:00")), [("2026-03-02T14:00", "2026-03-03T01:00")]),
        ("Washington ends at 20:00", "2026-03-02", (LA,), "WA", calling(windows=every_day("08:00", "21:00")), [("2026-03-02T16:00", "2026-03-03T04:00")]),
        ("Alabama: no Sundays", "2026-03-01", ("America/Chicago",), "AL", calling(), []),
        ("Alabama: state holiday", "2026-04-27", ("America/Chicago",), "AL", calling(skip_holidays=False), []),
        ("Louisiana weekday", "2026-03-02", ("America/Chicago",), "LA", calling(), [("2026-03-02T15:00", "2026-03-02T23:00")]),
        ("day before spring forward (EST)", "2026-03-07", (NY,), None, calling(), [("2026-03-07T14:00", "2026-03-07T22:00")]),
        ("spring forward day (EDT)", "2026-03-08", (NY,), None, calling(), [("2026-03-08T13:00", "2026-03-08T21:00")]),
        ("Phoenix ignores DST", "2026-03-08", (PHOENIX,), None, calling(), [("2026-03-08T16:00", "2026-03-09T00:00")]),
        ("day before fall back (EDT)", "2026-10-31", (NY,), None, calling(), [("2026-10-31T13:00", "2026-10-31T21:00")]),
        ("fall back day (EST)", "2026-11-01", (NY,), None, calling(), [("2026-11-01T14:00", "2026-11-01T22:00")]),
        ("two zones: intersection", "2026-03-02", (LA, BOISE), None, calling(), [("2026-03-02T17:00", "2026-03-03T00:00")]),
        ("two windows in a day", "2026-03-02", (NY,), None, calling(windows={"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]}), [("2026-03-02T14:00", "2026-03-02T17:00"), ("2026-03-02T18:00", "2026-03-02T22:00")]),
    ],
)  # fmt: skip
def test_contact_windows(
    case: str,
    day: str,
    zones: tuple[str, ...],
    state: str | None,
    policy: CallingPolicy,
    expected: list[tuple[str, str]],
) -> None:
    windows = windows_on(day, zones, policy, state)
    assert windows.intervals == tuple((utc(a), utc(b)) for a, b in expected), case


@pytest.mark.parametrize(
    ("day", "zones", "state", "policy", "rule"),
    [
        ("2026-03-02", (NY,), "FL", calling(windows=every_day("09:00", "21:00")), "Florida law: 08:00–20:00 local"),
        ("2026-03-02", (NY,), None, calling(windows=every_day("07:00", "21:00")), "US federal (TCPA): 08:00–21:00 local"),
        ("2026-05-25", (NY,), None, calling(), "tenant skips US holidays: 2026-05-25 is Memorial Day"),
        ("2026-03-01", ("America/Chicago",), "AL", calling(), "Alabama law forbids calls on Sundays"),
        ("2026-03-02", (LA, BOISE), None, calling(), "number spans 2 time zones (America/Los_Angeles, America/Boise): allowed in all"),
    ],
)  # fmt: skip
def test_windows_name_the_rules_that_shaped_them(
    day: str, zones: tuple[str, ...], state: str | None, policy: CallingPolicy, rule: str
) -> None:
    assert rule in windows_on(day, zones, policy, state).rules


@pytest.mark.parametrize(
    ("day", "wall", "bound", "expected"),
    [
        # 02:30 does not exist on 2026-03-08 in New York: a window starts after the gap...
        ("2026-03-08", "02:30", "start", "2026-03-08T07:30"),
        # ...and ends before it.
        ("2026-03-08", "02:30", "end", "2026-03-08T06:30"),
        # 01:30 happens twice on 2026-11-01: a window starts at the second, ends at the first.
        ("2026-11-01", "01:30", "start", "2026-11-01T06:30"),
        ("2026-11-01", "01:30", "end", "2026-11-01T05:30"),
        ("2026-11-01", "09:00", "start", "2026-11-01T14:00"),
    ],
)
def test_dst_wall_times_resolve_so_windows_never_grow(
    day: str, wall: str, bound: str, expected: str
) -> None:
    at = local_to_utc(date.fromisoformat(day), time.fromisoformat(wall), ZoneInfo(NY), bound=bound)
    assert at == utc(expected)


@pytest.mark.parametrize(
    ("at", "zones", "state", "reason"),
    [
        ("2026-03-02T12:00", (NY,), None, "Mon 2026-03-02 07:00 local time in America/New_York is outside the allowed hours (allowed 09:00–17:00)"),
        ("2026-05-25T15:00", (NY,), None, "Mon 2026-05-25 11:00 local time in America/New_York: tenant skips US holidays: 2026-05-25 is Memorial Day"),
        ("2026-03-01T16:00", ("America/Chicago",), "AL", "Sun 2026-03-01 10:00 local time in America/Chicago: Alabama law forbids calls on Sundays"),
        ("2026-03-02T16:30", (LA, BOISE), None, "Mon 2026-03-02 08:30 local time in America/Los_Angeles is outside the allowed hours (allowed 09:00–17:00); the number's prefix spans America/Los_Angeles, America/Boise: every one of them must allow it"),
    ],
)  # fmt: skip
def test_explain_outside_says_which_rule_forbids_a_moment(
    at: str, zones: tuple[str, ...], state: str | None, reason: str
) -> None:
    assert explain_outside(utc(at), zones, calling(), state) == reason


@pytest.mark.parametrize(
    ("previous", "after", "expected"),
    [
        ([], "2026-03-02T15:00", "2026-03-02T15:00"),
        (["2026-03-02T14:10"], "2026-03-02T15:00", "2026-03-02T15:00"),
        # Two attempts already today (cap 2 per day): tomorrow's window opens.
        (["2026-03-02T14:10", "2026-03-02T14:40"], "2026-03-02T15:00", "2026-03-03T14:00"),
        # Three this week (cap 3 per week): next Monday.
        (["2026-03-02T14:10", "2026-03-03T14:10", "2026-03-04T14:10"], "2026-03-04T15:00", "2026-03-09T13:00"),
    ],
)  # fmt: skip
def test_caps_push_the_next_attempt(previous: list[str], after: str, expected: str) -> None:
    start = utc("2026-03-02T00:00")
    windows = contact_windows((NY,), calling(), start=start, end=start + timedelta(days=14))
    caps = ContactCaps(per_day=2, per_week=3)
    found = next_moment_under_caps(
        windows, [utc(p) for p in previous], caps, zone=NY, after=utc(after)
    )
    assert found == utc(expected)
