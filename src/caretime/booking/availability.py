"""Effective availability: rules (weekly templates, dated adds and removes) → local windows
per date → UTC windows. Pure functions of data; the service loads the rules."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from caretime.booking.intervals import Span, merge, subtract
from caretime.booking.localtime import wall_to_utc


@dataclass(frozen=True)
class Rule:
    kind: str  # weekly | add | remove
    start_minute: int
    end_minute: int
    day: date | None = None
    weekdays: int = 0  # bit 0 = Monday
    valid_from: date | None = None
    valid_until: date | None = None

    def applies_on(self, day: date) -> bool:
        if self.kind != "weekly":
            return self.day == day
        if not self.weekdays >> day.weekday() & 1:
            return False
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


@dataclass(frozen=True)
class Window:
    """One effective window: local date and minutes, and the real UTC span it covers."""

    day: date
    start_minute: int
    end_minute: int
    start: datetime
    end: datetime


def local_day(rules: Iterable[Rule], day: date) -> list[Span]:
    """The effective local spans of one date: (weekly ∪ add) − remove."""
    on_day = [rule for rule in rules if rule.applies_on(day)]
    available = [(r.start_minute, r.end_minute) for r in on_day if r.kind != "remove"]
    removed = [(r.start_minute, r.end_minute) for r in on_day if r.kind == "remove"]
    return subtract(available, removed)


def dates(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def effective_windows(
    rules: Sequence[Rule], zone: ZoneInfo, first: date, last: date
) -> list[Window]:
    """Windows for local dates first..last inclusive, in order; windows that a
    spring-forward gap swallows entirely are left out."""
    by_day = _index(rules)
    windows = []
    for day in dates(first, last):
        candidates = by_day.get(day, []) + by_day.get(None, [])
        for start_minute, end_minute in local_day(candidates, day):
            start = _instant(day, start_minute, zone)
            end = _instant(day, end_minute, zone)
            if end > start:
                windows.append(Window(day, start_minute, end_minute, start, end))
    return windows


# A window's ends as instants, kept: the same provider-days are searched again and again
# (a month's 62 conversions cost ~0.17 ms, a lookup ~0.2 µs each). Pure: a zone's rules do
# not change while the process runs. Bounded: a few days of many providers' windows.
_instant = functools.lru_cache(maxsize=16_384)(wall_to_utc)


def _index(rules: Iterable[Rule]) -> dict[date | None, list[Rule]]:
    """Dated rules by their date; weekly rules under None (they may apply on any date)."""
    index: dict[date | None, list[Rule]] = defaultdict(list)
    for rule in rules:
        index[rule.day if rule.kind != "weekly" else None].append(rule)
    return index


def apply_dated(
    adds: list[Span], removes: list[Span], span: Span, *, remove: bool
) -> tuple[list[Span], list[Span]]:
    """Apply one dated submission to a date's adds and removes; the newest one wins where
    they overlap, so the two stay disjoint."""
    if remove:
        return subtract(adds, [span]), merge([*removes, span])
    return merge([*adds, span]), subtract(removes, [span])
