"""Slots on the grid: effective windows cut into fixed-length slots, minus busy time. Pure."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from caretime.booking.availability import Window
from caretime.booking.localtime import utc_to_wall

Span = tuple[datetime, datetime]


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime
    provider_id: str
    end: datetime


def cut(windows: Iterable[Window], length: timedelta) -> Iterator[Span]:
    """Consecutive slots from each window's start; a remainder shorter than a slot is dropped."""
    for window in windows:
        start = window.start
        while start + length <= window.end:
            yield start, start + length
            start += length


class BusyIndex:
    """Answers "does this span overlap any busy span?" in O(log n)."""

    def __init__(self, busy: Iterable[Span]) -> None:
        ordered = sorted(busy)
        self._starts = [start for start, _ in ordered]
        self._max_ends = list(accumulate((end for _, end in ordered), max))

    def overlaps(self, start: datetime, end: datetime) -> bool:
        before = bisect_left(self._starts, end)
        return before > 0 and self._max_ends[before - 1] > start


def free_slots(
    provider_id: str,
    windows: Sequence[Window],
    busy: Iterable[Span],
    *,
    length: timedelta,
    start: datetime,
    end: datetime,
) -> list[Slot]:
    """Slots of one provider starting in [start, end) that no busy span overlaps."""
    index = BusyIndex(busy)
    return [
        Slot(slot_start, provider_id, slot_end)
        for slot_start, slot_end in cut(windows, length)
        if start <= slot_start < end and not index.overlaps(slot_start, slot_end)
    ]


def on_grid(instant: datetime, zone: ZoneInfo, slot_minutes: int) -> bool:
    """Whether an instant is a slot boundary on the provider's local wall-clock grid."""
    wall = utc_to_wall(instant, zone)
    minute_of_day = wall.hour * 60 + wall.minute
    return wall.second == 0 and wall.microsecond == 0 and minute_of_day % slot_minutes == 0
