"""Calls per hour, stacked by time zone, laid out as SVG rectangles (server-rendered, no JS).

Pure functions from counts to geometry; the template `_hour_chart.html` draws the result and
an equivalent table for screen readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
OTHER_COLOUR = "#9CA3AF"
OTHER = "other zones"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Segment:
    zone: str
    count: int
    x: float
    y: float
    width: float
    height: float
    colour: str


@dataclass(frozen=True)
class Bar:
    start: datetime
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class HourChart:
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...]  # (zone, colour)
    peak: int
    width: int
    height: int
    bar_width: float

    @property
    def total(self) -> int:
        return sum(bar.total for bar in self.bars)


def floor_hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def count_by_hour(
    calls: Iterable[tuple[datetime, str, int]], *, start: datetime, hours: int
) -> dict[datetime, Counter[str]]:
    """(instant, zone, how many) → per-hour counts by zone for `hours` hours from the hour
    containing `start`; calls outside that range are left out."""
    first = floor_hour(start)
    buckets: dict[datetime, Counter[str]] = {first + HOUR * i: Counter() for i in range(hours)}
    for instant, zone, count in calls:
        bucket = buckets.get(floor_hour(instant))
        if bucket is not None:
            bucket[zone] += count
    return buckets


def hour_chart(
    buckets: dict[datetime, Counter[str]], *, width: int = 720, height: int = 160
) -> HourChart:
    colours = _zone_colours(buckets.values())
    peak = max((sum(counts.values()) for counts in buckets.values()), default=0)
    bar_width = width / max(len(buckets), 1)
    bars = tuple(
        _bar(start, counts, colours, index * bar_width, bar_width, height, peak)
        for index, (start, counts) in enumerate(sorted(buckets.items()))
    )
    return HourChart(bars, tuple(colours.items()), peak, width, height, bar_width)


def _zone_colours(counts: Iterable[Counter[str]]) -> dict[str, str]:
    """The busiest zones get their own colour, the rest share one."""
    totals: Counter[str] = Counter()
    for bucket in counts:
        totals.update(bucket)
    ranked = [zone for zone, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]
    colours = dict(zip(ranked, PALETTE, strict=False))
    if len(ranked) > len(PALETTE):
        colours[OTHER] = OTHER_COLOUR
    return colours


def _bar(
    start: datetime,
    counts: Counter[str],
    colours: dict[str, str],
    x: float,
    bar_width: float,
    height: int,
    peak: int,
) -> Bar:
    grouped = _group_other(counts, colours)
    scale = height / peak if peak else 0.0
    segments: list[Segment] = []
    top = float(height)
    for zone in colours:
        count = grouped.get(zone, 0)
        if not count:
            continue
        size = count * scale
        top -= size
        segments.append(
            Segment(zone, count, x + 1, top, max(bar_width - 2, 1), size, colours[zone])
        )
    return Bar(start, sum(counts.values()), tuple(segments))


def _group_other(counts: Counter[str], colours: dict[str, str]) -> Counter[str]:
    grouped: Counter[str] = Counter()
    for zone, count in counts.items():
        grouped[zone if zone in colours and zone != OTHER else OTHER] += count
    return grouped


def tick_bars(chart: HourChart, every: int = 6) -> Sequence[tuple[float, datetime]]:
    """Where to label the time axis: every few hours."""
    return [
        (index * chart.bar_width, bar.start)
        for index, bar in enumerate(chart.bars)
        if index % every == 0
    ]
