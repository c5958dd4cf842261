"""Calls-per-hour charts: counts land in their hour, bars stack by zone, scaled to the peak."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from caretime.web.charts import OTHER, PALETTE, count_by_hour, hour_chart, tick_bars

T0 = datetime(2026, 3, 2, 15, 20, tzinfo=UTC)
H15 = datetime(2026, 3, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "hour_index"),
    [
        (timedelta(minutes=-20), 0),  # 15:00 sharp: same hour as the start
        (timedelta(minutes=39), 0),  # 15:59
        (timedelta(minutes=40), 1),  # 16:00
        (timedelta(hours=47, minutes=39), 47),  # the last hour shown
    ],
)
def test_calls_are_counted_in_their_hour(offset: timedelta, hour_index: int) -> None:
    buckets = count_by_hour([(T0 + offset, "America/New_York", 1)], start=T0, hours=48)
    assert buckets[H15 + timedelta(hours=hour_index)] == Counter({"America/New_York": 1})


@pytest.mark.parametrize("offset", [timedelta(minutes=-21), timedelta(hours=47, minutes=40)])
def test_calls_outside_the_window_are_left_out(offset: timedelta) -> None:
    buckets = count_by_hour([(T0 + offset, "UTC", 1)], start=T0, hours=48)
    assert sum(sum(c.values()) for c in buckets.values()) == 0


def test_bars_stack_by_zone_and_the_peak_fills_the_height() -> None:
    calls = [(H15, "America/New_York", 3), (H15, "America/Chicago", 1)]
    calls += [(H15 + timedelta(hours=1), "America/Chicago", 2)]
    chart = hour_chart(count_by_hour(calls, start=H15, hours=2), width=200, height=100)
    first, second = chart.bars
    assert (chart.peak, chart.total, first.total, second.total) == (4, 6, 4, 2)
    # Both zones have 3 calls in all: ties stack alphabetically, from the baseline up.
    assert [(s.zone, s.count, s.height, s.y) for s in first.segments] == [
        ("America/Chicago", 1, 25.0, 75.0),
        ("America/New_York", 3, 75.0, 0.0),
    ]
    assert second.segments[0].height == 50.0
    assert second.segments[0].x == 101  # second bar of two across 200 units, 1 unit gap


def test_the_busiest_zones_get_colours_and_the_rest_share_one() -> None:
    zones = [f"Zone/{i}" for i in range(len(PALETTE) + 2)]
    calls = [(H15, zone, 20 - i) for i, zone in enumerate(zones)]
    chart = hour_chart(count_by_hour(calls, start=H15, hours=1))
    legend = dict(chart.legend)
    assert list(legend)[: len(PALETTE)] == zones[: len(PALETTE)]
    assert OTHER in legend
    other = next(s for s in chart.bars[0].segments if s.zone == OTHER)
    assert other.count == (20 - len(PALETTE)) + (20 - len(PALETTE) - 1)


def test_an_empty_chart_has_no_segments() -> None:
    chart = hour_chart(count_by_hour([], start=H15, hours=48))
    assert (chart.peak, chart.total, chart.legend) == (0, 0, ())
    assert all(not bar.segments for bar in chart.bars)
    assert len(tick_bars(chart)) == 8
