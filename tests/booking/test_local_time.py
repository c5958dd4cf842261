"""Wall-clock windows to UTC, on ordinary and daylight-saving change days (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from caretime.booking.availability import Rule, effective_windows
from caretime.booking.grid import cut
from caretime.booking.intervals import merge, subtract
from caretime.booking.localtime import wall_to_utc

NY = ZoneInfo("America/New_York")
QUARTER = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(60, 120), (90, 180)], [(60, 180)]),
        ([(60, 120), (120, 180)], [(60, 180)]),
        ([(200, 300), (60, 120)], [(60, 120), (200, 300)]),
    ],
)
def test_merge(spans: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    assert merge(spans) == expected


@pytest.mark.parametrize(
    ("spans", "removed", "expected"),
    [
        ([(480, 1020)], [(720, 780)], [(480, 720), (780, 1020)]),
        ([(480, 1020)], [(0, 1440)], []),
        ([(480, 600)], [(600, 700)], [(480, 600)]),
        ([(480, 600), (700, 800)], [(550, 750)], [(480, 550), (750, 800)]),
    ],
)
def test_subtract(
    spans: list[tuple[int, int]], removed: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    assert subtract(spans, removed) == expected


@pytest.mark.parametrize(
    ("day", "minute", "expected_utc"),
    [
        (date(2026, 3, 7), 8 * 60, "2026-03-07T13:00"),  # EST
        (date(2026, 3, 8), 8 * 60, "2026-03-08T12:00"),  # EDT, the day clocks go forward
        (date(2026, 3, 8), 2 * 60 + 30, "2026-03-08T07:00"),  # 02:30 never happens: the jump
        (date(2026, 3, 8), 3 * 60, "2026-03-08T07:00"),  # 03:00 EDT is that same instant
        (date(2026, 11, 1), 60 + 30, "2026-11-01T05:30"),  # repeated 01:30: first (EDT) one
        (date(2026, 11, 1), 2 * 60, "2026-11-01T07:00"),  # 02:00 EST, after the repeat
        (date(2026, 3, 8), 24 * 60, "2026-03-09T04:00"),  # 24:00 is the next midnight
    ],
)
def test_wall_to_utc(day: date, minute: int, expected_utc: str) -> None:
    expected = datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
    assert wall_to_utc(day, minute, NY) == expected


def _slots(day: date, start: int, end: int) -> list[datetime]:
    rules = [Rule("add", start, end, day=day)]
    return [s for s, _ in cut(effective_windows(rules, NY, day, day), QUARTER)]


def test_a_working_day_on_the_spring_forward_day_keeps_its_local_hours() -> None:
    slots = _slots(date(2026, 3, 8), 8 * 60, 15 * 60)
    assert len(slots) == 28
    assert slots[0] == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert slots[-1] == datetime(2026, 3, 8, 18, 45, tzinfo=UTC)


def test_a_window_across_the_skipped_hour_has_only_real_time() -> None:
    # 01:00–04:00 local on 8 March 2026 is two real hours (02:00–03:00 never happens).
    slots = _slots(date(2026, 3, 8), 60, 4 * 60)
    assert len(slots) == 8
    assert slots[3] + QUARTER == slots[4] == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_a_window_inside_the_skipped_hour_yields_no_slots() -> None:
    assert _slots(date(2026, 3, 8), 2 * 60, 2 * 60 + 45) == []


def test_a_window_across_the_repeated_hour_has_all_real_time() -> None:
    # 00:00–03:00 local on 1 November 2026 is four real hours.
    assert len(_slots(date(2026, 11, 1), 0, 3 * 60)) == 16


def test_weekly_template_with_a_day_off_and_a_shorter_day() -> None:
    monday = date(2026, 3, 2)
    rules = [
        Rule("weekly", 9 * 60, 17 * 60, weekdays=0b11111, valid_from=monday),
        Rule("remove", 0, 24 * 60, day=monday + timedelta(days=1)),
        Rule("remove", 12 * 60, 17 * 60, day=monday + timedelta(days=2)),
    ]
    windows = effective_windows(rules, NY, monday, monday + timedelta(days=6))
    assert [(w.day.isoformat(), w.start_minute, w.end_minute) for w in windows] == [
        ("2026-03-02", 540, 1020),
        ("2026-03-04", 540, 720),
        ("2026-03-05", 540, 1020),
        ("2026-03-06", 540, 1020),
    ]
