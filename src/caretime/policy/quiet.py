"""Quiet hours: when may we contact a person (a caregiver, a patient's reminder) at all.

The same vocabulary as calling windows: allowed UTC intervals and the rule that shaped them.
Quiet hours are a local wall-clock span such as 21:00-08:00 (it may cross midnight); a
person whose zone is uncertain gets the intersection, as patients' numbers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from caretime.policy.windows import ContactWindows, Interval, intersect, local_to_utc, merge

MIDNIGHT = time(0, 0)
LAST_MINUTE = timedelta(minutes=1)


class LocalSpan(Protocol):
    @property
    def start(self) -> time: ...
    @property
    def end(self) -> time: ...


@dataclass(frozen=True)
class QuietHours:
    """No contact from `start` to `end`, local time; start > end crosses midnight."""

    start: time
    end: time

    @classmethod
    def of(cls, window: LocalSpan) -> QuietHours:
        """From a tenant policy's quiet-hours setting (anything with local start and end)."""
        return cls(window.start, window.end)

    def describe(self) -> str:
        return f"quiet hours {self.start:%H:%M}-{self.end:%H:%M} local time"

    def awake_spans(self) -> tuple[tuple[time, time | None], ...]:
        """The allowed spans of one local day; None as an end means the next midnight."""
        if self.start == self.end:
            return ((MIDNIGHT, None),)
        if self.start > self.end:
            return ((self.end, self.start),)
        spans: list[tuple[time, time | None]] = [(self.end, None)]
        if self.start > MIDNIGHT:
            spans.insert(0, (MIDNIGHT, self.start))
        return tuple(spans)


def awake_windows(
    zones: Sequence[str], quiet: QuietHours, *, start: datetime, end: datetime
) -> ContactWindows:
    """The instants in [start, end) outside quiet hours in every one of `zones`."""
    per_zone = [_zone_awake(ZoneInfo(zone), quiet, start, end) for zone in zones]
    intervals = per_zone[0] if per_zone else [(start, end)]
    for other in per_zone[1:]:
        intervals = intersect(intervals, other)
    rule = f"{quiet.describe()} ({', '.join(zones)})"
    return ContactWindows(tuple(intervals), (rule,))


def next_awake(at: datetime, zones: Sequence[str], quiet: QuietHours) -> datetime:
    """`at` if it is outside quiet hours, else the moment they end."""
    windows = awake_windows(zones, quiet, start=at, end=at + timedelta(days=3))
    found = windows.first_at_or_after(at)
    assert found is not None, "quiet hours never cover three whole days"
    return found


def last_awake_before(
    at: datetime, zones: Sequence[str], quiet: QuietHours, *, not_before: datetime
) -> datetime | None:
    """The latest instant at or before `at` outside quiet hours, not earlier than
    `not_before`; None if every moment between is quiet."""
    if not_before > at:
        return None
    windows = awake_windows(zones, quiet, start=not_before, end=at + timedelta(microseconds=1))
    if not windows.intervals:
        return None
    last_start, last_end = windows.intervals[-1]
    if last_end > at:
        return at
    # Intervals are half-open: the quiet hours' first minute is already quiet.
    return max(last_start, last_end - LAST_MINUTE)


def quiet_until(at: datetime, zone: str, quiet: QuietHours) -> datetime | None:
    """When the quiet hours covering `at` end in `zone`, or None if `at` is not quiet."""
    resumes = next_awake(at, [zone], quiet)
    return None if resumes == at else resumes


def _zone_awake(tz: ZoneInfo, quiet: QuietHours, start: datetime, end: datetime) -> list[Interval]:
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    intervals: list[Interval] = []
    while day <= last_day:
        for span_start, span_end in quiet.awake_spans():
            lo = max(local_to_utc(day, span_start, tz, bound="start"), start)
            hi = min(_span_end_utc(day, span_end, tz), end)
            if lo < hi:
                intervals.append((lo, hi))
        day += timedelta(days=1)
    return merge(intervals)


def _span_end_utc(day: date, span_end: time | None, tz: ZoneInfo) -> datetime:
    if span_end is None:
        return local_to_utc(day + timedelta(days=1), MIDNIGHT, tz, bound="end")
    return local_to_utc(day, span_end, tz, bound="end")
