"""Contact windows: when may we call a number, as UTC intervals plus the rules that shaped them.

A pure function of (time zones, tenant calling policy, legal rules, date range). Every zone a
number may be in must allow the moment (intersection), so a number spanning two zones is only
called when it is allowed in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from caretime.policy.calendar import holiday_name
from caretime.policy.legal import LegalRule, rules_for
from caretime.tenancy.policy import WEEKDAYS, CallingPolicy

Interval = tuple[datetime, datetime]
Span = tuple[time, time]


@dataclass(frozen=True)
class ContactWindows:
    """Allowed instants: sorted, disjoint, half-open UTC intervals; and why they look so."""

    intervals: tuple[Interval, ...]
    rules: tuple[str, ...]

    def contains(self, at: datetime) -> bool:
        return any(start <= at < end for start, end in self.intervals)

    def allowed_until(self, at: datetime) -> datetime | None:
        """The end of the allowed interval `at` is in (None if `at` is not allowed)."""
        return next((end for start, end in self.intervals if start <= at < end), None)

    def first_at_or_after(self, at: datetime) -> datetime | None:
        for start, end in self.intervals:
            if at < end:
                return max(start, at)
        return None


@dataclass(frozen=True)
class DayVerdict:
    """The allowed local spans of one day in one zone, and the rules that cut them."""

    spans: tuple[Span, ...]
    reasons: tuple[str, ...]


def contact_windows(
    zones: Sequence[str],
    calling: CallingPolicy,
    *,
    start: datetime,
    end: datetime,
    state: str | None = None,
) -> ContactWindows:
    legal = rules_for(state)
    rules: dict[str, None] = {"tenant calling windows (local time, per weekday)": None}
    per_zone = []
    for zone in zones:
        per_zone.append(_zone_intervals(zone, calling, legal, state, start, end, rules))
    intervals = per_zone[0] if per_zone else []
    for other in per_zone[1:]:
        intervals = intersect(intervals, other)
    if len(zones) > 1:
        rules[f"number spans {len(zones)} time zones ({', '.join(zones)}): allowed in all"] = None
    return ContactWindows(tuple(intervals), tuple(rules))


def day_verdict(
    day: date, calling: CallingPolicy, legal: Iterable[LegalRule], state: str | None
) -> DayVerdict:
    closed = _closed_day_reason(day, calling, legal, state)
    if closed is not None:
        return DayVerdict((), (closed,))
    legal_start = max(rule.start for rule in legal)
    legal_end = min(rule.end for rule in legal)
    spans, reasons = [], []
    for window in calling.windows.get(WEEKDAYS[day.weekday()], []):
        span_start, span_end = max(window.start, legal_start), min(window.end, legal_end)
        if (span_start, span_end) != (window.start, window.end):
            reasons.extend(_narrowing_rules(legal, window.start, window.end))
        if span_start < span_end:
            spans.append((span_start, span_end))
    return DayVerdict(tuple(spans), tuple(reasons))


def _closed_day_reason(
    day: date, calling: CallingPolicy, legal: Iterable[LegalRule], state: str | None
) -> str | None:
    if calling.skip_holidays:
        name = holiday_name(day, calling.holiday_country, calling.holiday_subdivision)
        if name is not None:
            return f"tenant skips {calling.holiday_country} holidays: {day} is {name}"
    for rule in legal:
        if rule.no_sundays and day.weekday() == 6:
            return f"{rule.name} forbids calls on Sundays"
        name = holiday_name(day, "US", state) if rule.no_legal_holidays else None
        if name is not None:
            return f"{rule.name} forbids calls on legal holidays: {day} is {name}"
    return None


def _narrowing_rules(legal: Iterable[LegalRule], start: time, end: time) -> list[str]:
    return [rule.describe() for rule in legal if rule.start > start or rule.end < end]


def _zone_intervals(
    zone: str,
    calling: CallingPolicy,
    legal: tuple[LegalRule, ...],
    state: str | None,
    start: datetime,
    end: datetime,
    rules: dict[str, None],
) -> list[Interval]:
    tz = ZoneInfo(zone)
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date()
    intervals: list[Interval] = []
    while day <= last_day:
        verdict = day_verdict(day, calling, legal, state)
        rules.update(dict.fromkeys(verdict.reasons))
        for span_start, span_end in verdict.spans:
            lo = max(local_to_utc(day, span_start, tz, bound="start"), start)
            hi = min(local_to_utc(day, span_end, tz, bound="end"), end)
            if lo < hi:
                intervals.append((lo, hi))
        day += timedelta(days=1)
    return merge(intervals)


def local_to_utc(day: date, at: time, tz: ZoneInfo, *, bound: str) -> datetime:
    """A local wall time as UTC, resolving DST conservatively: a window never grows.

    A wall time skipped by spring-forward or doubled by fall-back has two readings (fold 0
    and 1); a window starts at the later one and ends at the earlier one.
    """
    readings = [datetime.combine(day, at, tz).replace(fold=fold).astimezone(UTC) for fold in (0, 1)]
    return max(readings) if bound == "start" else min(readings)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def explain_outside(
    at: datetime, zones: Sequence[str], calling: CallingPolicy, state: str | None
) -> str:
    """Why a moment is not allowed for a number, in words (the first rule that forbids it)."""
    legal = rules_for(state)
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        verdict = day_verdict(local.date(), calling, legal, state)
        where = f"{local:%a %Y-%m-%d %H:%M} local time in {zone}"
        if not verdict.spans and verdict.reasons:
            return f"{where}: {verdict.reasons[0]}{_spanning(zones)}"
        if not any(lo <= local.time() < hi for lo, hi in verdict.spans):
            described = _describe(verdict, local.date())
            return f"{where} is outside the allowed hours ({described}){_spanning(zones)}"
    return "outside the allowed calling windows"


def _spanning(zones: Sequence[str]) -> str:
    if len(zones) <= 1:
        return ""
    return f"; the number's prefix spans {', '.join(zones)}: every one of them must allow it"


def _describe(verdict: DayVerdict, day: date) -> str:
    if not verdict.spans:
        return f"the tenant has no calling window on {WEEKDAYS[day.weekday()]}"
    spans = ", ".join(f"{lo:%H:%M}–{hi:%H:%M}" for lo, hi in verdict.spans)
    shaped = f"; {'; '.join(verdict.reasons)}" if verdict.reasons else ""
    return f"allowed {spans}{shaped}"
