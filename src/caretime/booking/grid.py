"""Slots on the grid: visits that start on the grid, fit (with their buffers) inside an
effective window and overlap no busy time. Pure."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import NamedTuple
from zoneinfo import ZoneInfo

from caretime.booking.availability import Window
from caretime.booking.localtime import utc_to_wall

Span = tuple[datetime, datetime]


class Slot(NamedTuple):
    """Ordered by (start, provider id): a tuple, so that thousands sort and build cheaply."""

    start: datetime
    provider_id: str
    end: datetime


@dataclass(frozen=True)
class VisitShape:
    """How long a visit lasts and the free time it needs before and after (minutes)."""

    minutes: int
    before: int = 0
    after: int = 0

    def end(self, start: datetime) -> datetime:
        return start + timedelta(minutes=self.minutes)

    def occupied(self, start: datetime) -> Span:
        """The span no other visit of the provider may overlap: the visit and its buffers."""
        return start - timedelta(minutes=self.before), self.end(start) + timedelta(
            minutes=self.after
        )


def visit_starts(windows: Iterable[Window], grid: timedelta, shape: VisitShape) -> Iterator[Span]:
    """(start, occupied end) of each grid start, counted from a window's start, at which the
    visit and its buffers fit inside that window."""
    for window in windows:
        start = window.start
        while True:
            occupied_start, occupied_end = shape.occupied(start)
            if occupied_end > window.end:
                break
            if occupied_start >= window.start:
                yield start, occupied_end
            start += grid


def cut(windows: Iterable[Window], length: timedelta) -> Iterator[Span]:
    """Consecutive slots from each window's start; a remainder shorter than a slot is dropped."""
    for window in windows:
        start = window.start
        while start + length <= window.end:
            yield start, start + length
            start += length


class BusyIndex:
    """Answers "does this span overlap any busy span?" in O(log n); false when there is none."""

    def __init__(self, busy: Iterable[Span]) -> None:
        ordered = sorted(busy)
        self._starts = [start for start, _ in ordered]
        self._max_ends = list(accumulate((end for _, end in ordered), max))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        before = bisect_left(self._starts, end)
        return before > 0 and self._max_ends[before - 1] > start


def free_slots(
    provider_id: str,
    windows: Sequence[Window],
    busy: Iterable[Span],
    *,
    grid: timedelta,
    shape: VisitShape,
    start: datetime,
    end: datetime,
) -> list[Slot]:
    """Visits of one provider starting in [start, end) whose occupied span overlaps no busy
    span: the starts of visit_starts, counted per window rather than tried one by one."""
    index = BusyIndex(busy)
    length = timedelta(minutes=shape.minutes)
    before, after = timedelta(minutes=shape.before), timedelta(minutes=shape.after)
    slots = []
    for window in windows:
        for slot_start in _starts_within(window, grid, length, before, after, start, end):
            slot_end = slot_start + length
            if not (index and index.overlaps(slot_start - before, slot_end + after)):
                slots.append(Slot(slot_start, provider_id, slot_end))
    return slots


def _starts_within(
    window: Window,
    grid: timedelta,
    length: timedelta,
    before: timedelta,
    after: timedelta,
    start: datetime,
    end: datetime,
) -> Iterator[datetime]:
    """The grid starts of one window (window.start + k × grid) in [start, end) at which the
    visit and its buffers fit inside the window: k × grid ≥ before, and the visit's end
    plus after ≤ window.end."""
    first = max(_ceil_div(before, grid), _ceil_div(start - window.start, grid))
    last = min(
        (window.end - window.start - length - after) // grid,
        _ceil_div(end - window.start, grid) - 1,
    )
    slot_start = window.start + first * grid
    for _ in range(first, last + 1):
        yield slot_start
        slot_start += grid


def _ceil_div(span: timedelta, grid: timedelta) -> int:
    return -(-span // grid)


def on_grid(instant: datetime, zone: ZoneInfo, slot_minutes: int) -> bool:
    """Whether an instant is a slot boundary on the provider's local wall-clock grid."""
    wall = utc_to_wall(instant, zone)
    minute_of_day = wall.hour * 60 + wall.minute
    return wall.second == 0 and wall.microsecond == 0 and minute_of_day % slot_minutes == 0
