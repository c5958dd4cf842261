"""Recurring calls: an RFC 5545 RRULE (read by python-dateutil) in the recipient's local time.

Pure: no I/O. `checked_rule` turns what a caller sent into the rule caretime keeps, or says
in words what is wrong with it; `Recurrence` binds a rule to its start and zone and walks
its occurrences as local wall times, so 10:00 stays 10:00 local across a DST change.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from caretime.policy import CapacityLedger, PlanItem, Planner, Scheduled
from caretime.tenancy.policy import CallingPolicy

MAX_RULE = 500
# A Monday in a leap year: any rule that parses somewhere parses here.
_SAMPLE_START = datetime(2028, 1, 3, 9, 0)
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_TOO_OFTEN = ("HOURLY", "MINUTELY", "SECONDLY")
PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR",
     "BYMINUTE", "BYSETPOS", "WKST"}
)  # fmt: skip
# RFC 5545 parts caretime does not take, each with why (a call is planned to the minute,
# in windows; week and year numbering rules are for calendars, not patient calls).
_REFUSED_PARTS = {
    "BYSECOND": "calls are planned to the minute",
    "BYYEARDAY": "use BYMONTH and BYMONTHDAY",
    "BYWEEKNO": "use FREQ=WEEKLY with INTERVAL",
    "BYEASTER": "it is not part of RFC 5545",
    "DTSTART": 'give the first occurrence\'s time as "scheduled"',
}
MAX_COUNT = 1000
MAX_INTERVAL = 366
_PART = re.compile(r"([A-Za-z]+)=([^;=]+)")
_UNTIL = re.compile(r"\d{8}(T\d{6}Z?)?")
_LOCAL = "%Y-%m-%dT%H:%M"
# The most days each month can have (February: a leap year's).
_MONTH_DAYS = {month: calendar.monthrange(2028, month)[1] for month in range(1, 13)}


def checked_rule(text: str) -> str:
    """The rule as caretime keeps it (upper case, no "RRULE:" prefix, and BYMINUTE=0 when
    the caller gave an hour but no minute, so "BYHOUR=10" means 10:00), or a ValueError
    saying what is wrong."""
    parts = _parts(text)
    _check_parts(parts)
    if "BYHOUR" in parts and "BYMINUTE" not in parts:
        parts["BYMINUTE"] = "0"
    rule = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        built = _build(rule, _SAMPLE_START)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from None
    _check_possible(parts, built)
    return rule


def _parts(text: str) -> dict[str, str]:
    text = text.strip()
    if len(text) > MAX_RULE:
        raise ValueError(f"an RRULE is at most {MAX_RULE} characters")
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if "\n" in text or "\r" in text:
        raise ValueError(
            "give one RRULE line, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=8 (the first occurrence's "
            'time goes in "scheduled")'
        )
    parts: dict[str, str] = {}
    for piece in filter(None, (piece.strip() for piece in text.split(";"))):
        match = _PART.fullmatch(piece)
        if match is None:
            raise ValueError(f"{piece[:40]!r} is not NAME=VALUE, e.g. FREQ=WEEKLY")
        name, value = match.group(1).upper(), match.group(2).strip().upper()
        if name in parts:
            raise ValueError(f"{name} is given twice")
        parts[name] = value
    return parts


def _check_parts(parts: dict[str, str]) -> None:
    for name in parts:
        if name in _REFUSED_PARTS:
            raise ValueError(f"{name} is not supported: {_REFUSED_PARTS[name]}")
        if name not in PARTS:
            raise ValueError(f"unknown RRULE part {name[:20]!r}")
    freq = parts.get("FREQ")
    if freq is None:
        raise ValueError("FREQ is required, e.g. FREQ=WEEKLY;BYDAY=MO")
    if freq in _TOO_OFTEN:
        raise ValueError(
            f"FREQ={freq} is more often than daily: a recurring patient call repeats at most "
            "once a day (use FREQ=DAILY)"
        )
    if freq not in FREQUENCIES:
        raise ValueError(f"FREQ must be one of {', '.join(FREQUENCIES)}, not {freq[:20]!r}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ValueError("give COUNT or UNTIL, not both (RFC 5545)")
    if "UNTIL" in parts and not _UNTIL.fullmatch(parts["UNTIL"]):
        raise ValueError(
            "UNTIL is a date (20260430, that whole local day), a local time (20260430T170000) "
            "or an instant (20260430T210000Z)"
        )
    if any("," in parts.get(name, "") for name in ("BYHOUR", "BYMINUTE")):
        raise ValueError("one time of day per rule: BYHOUR and BYMINUTE take a single value")
    count = parts.get("COUNT", "1")
    if not count.isdigit() or not 1 <= int(count) <= MAX_COUNT:
        raise ValueError(f"COUNT must be a whole number from 1 to {MAX_COUNT}")
    # INTERVAL=0 makes dateutil repeat one moment forever.
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= MAX_INTERVAL:
        raise ValueError(f"INTERVAL must be a whole number from 1 to {MAX_INTERVAL}")


def _check_possible(parts: dict[str, str], built: rrule) -> None:
    """Refuse a rule whose days never exist (BYMONTH=2;BYMONTHDAY=30, the 2nd of a set of
    one): dateutil would look for one day by day until the year 9999, which takes seconds
    of CPU in the request. What remains always has an occurrence within a few decades."""
    days = _numbers(parts, "BYMONTHDAY")
    months = _numbers(parts, "BYMONTH")
    if any(not 1 <= month <= 12 for month in months):
        raise ValueError("BYMONTH takes months from 1 to 12")
    if any(not 1 <= abs(day) <= 31 for day in days):
        raise ValueError("BYMONTHDAY takes days from 1 to 31 (or -31 to -1 from the end)")
    if days and not any(abs(day) <= _MONTH_DAYS[m] for day in days for m in months or _MONTH_DAYS):
        raise ValueError("the rule's days never exist (BYMONTHDAY is past the end of BYMONTH)")
    _check_weekday_ordinals(parts)
    _check_setpos(parts, months)
    if built.after(_SAMPLE_START - timedelta(days=1)) is None and "UNTIL" not in parts:
        raise ValueError("the rule has no occurrence at all")


def _numbers(parts: dict[str, str], name: str) -> list[int]:
    return [int(value) for value in parts.get(name, "").split(",") if value]


_ORDINAL = re.compile(r"([+-]?\d+)?([A-Z]{2})")


def _check_weekday_ordinals(parts: dict[str, str]) -> None:
    """ "2MO" (the 2nd Monday) is for monthly and yearly rules (RFC 5545), within 5 a month
    and 53 a year."""
    ordinals = [int(n) for n, _ in _ORDINAL.findall(parts.get("BYDAY", "")) if n]
    if not ordinals:
        return
    freq = parts["FREQ"]
    if "BYMONTHDAY" in parts:
        raise ValueError("give BYDAY with a position (2TU) or BYMONTHDAY, not both")
    if freq not in ("MONTHLY", "YEARLY"):
        raise ValueError(
            f"BYDAY with a position (e.g. 2MO) needs FREQ=MONTHLY or YEARLY, not {freq}"
        )
    most = 5 if freq == "MONTHLY" or "BYMONTH" in parts else 53
    if any(abs(n) > most for n in ordinals):
        raise ValueError(f"a BYDAY position is at most {most} here")


def _check_setpos(parts: dict[str, str], months: list[int]) -> None:
    """BYSETPOS picks among a period's days: taken for monthly and yearly rules over plain
    weekdays ("the last weekday": BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1), where every period
    holds at least 4 of each weekday a month."""
    if "BYSETPOS" not in parts:
        return
    weekdays = [day for n, day in _ORDINAL.findall(parts.get("BYDAY", "")) if not n]
    plain = weekdays and len(weekdays) == len(parts["BYDAY"].split(","))
    if parts["FREQ"] not in ("MONTHLY", "YEARLY") or not plain or "BYMONTHDAY" in parts:
        raise ValueError(
            "BYSETPOS goes with FREQ=MONTHLY or YEARLY and plain BYDAY weekdays, e.g. "
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1 (the last weekday of the month)"
        )
    per_month = 4 * len(weekdays)
    most = per_month if parts["FREQ"] == "MONTHLY" else per_month * (len(months) or 13)
    if any(not 1 <= abs(position) <= most for position in _numbers(parts, "BYSETPOS")):
        raise ValueError(f"BYSETPOS must be from 1 to {most} (or -{most} to -1) here")


def _build(rule: str, dtstart: datetime) -> rrule:
    built = rrulestr(rule, dtstart=dtstart, ignoretz=True)
    assert isinstance(built, rrule)
    return built


def until_in_zone(rule: str, zone: ZoneInfo) -> str:
    """The rule with its UNTIL as local wall time: a UTC instant (…Z) in the zone, a bare
    date as the end of that local day (inclusive, as a person means "until April 30")."""
    parts = dict(part.split("=", 1) for part in rule.split(";"))
    until = parts.get("UNTIL")
    if until is None:
        return rule
    if until.endswith("Z"):
        instant = datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        parts["UNTIL"] = instant.astimezone(zone).strftime("%Y%m%dT%H%M%S")
    elif "T" not in until:
        parts["UNTIL"] = f"{until}T235959"
    return ";".join(f"{name}={value}" for name, value in parts.items())


def format_local(wall: datetime) -> str:
    return wall.strftime(_LOCAL)


def parse_local(text: str) -> datetime:
    return datetime.strptime(text, _LOCAL)


@dataclass(frozen=True)
class Recurrence:
    """A rule bound to its first local wall time and the zone it is read in."""

    rule: str
    dtstart: datetime  # naive: local wall time in `zone`, whole minutes
    zone: ZoneInfo

    @functools.cached_property
    def _rrule(self) -> rrule:
        return _build(until_in_zone(self.rule, self.zone), self.dtstart)

    def first(self) -> datetime | None:
        return self._rrule.after(self.dtstart, inc=True)

    def first_from(self, now: datetime) -> datetime | None:
        """The first occurrence not before now (to the minute): a start in the past anchors
        the rule (and COUNT counts from it), but what it would have called is not called."""
        wall = now.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        return self._rrule.after(max(self.dtstart, wall), inc=True)

    def after(self, wall: datetime) -> datetime | None:
        """The occurrence after this local wall time, if the rule has one."""
        return self._rrule.after(wall, inc=False)

    def last_at_or_before(self, instant: datetime) -> datetime | None:
        """The latest occurrence (wall time) whose moment is not after `instant`."""
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        return self._rrule.before(wall, inc=True)

    def between(self, first: datetime, last: datetime) -> list[datetime]:
        """The occurrences strictly between two wall times."""
        return list(self._rrule.between(first, last, inc=False))

    def instant(self, wall: datetime) -> datetime:
        """The UTC moment of a local wall time (a time skipped by a spring-forward reads as
        standard time, e.g. 02:30 is 03:30 daylight time; the windows move it anyway)."""
        return wall.replace(tzinfo=self.zone).astimezone(UTC)


def start_wall(scheduled: datetime | None, zone: ZoneInfo, now: datetime) -> datetime:
    """The rule's start as local wall time, to the minute: `scheduled` (an instant, or local
    time when it has no offset), else now."""
    moment = scheduled if scheduled is not None else now
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    return moment.replace(second=0, microsecond=0)


class Placed(NamedTuple):
    """An occurrence planned: its nominal wall time, where the planner put it, the next
    occurrence's wall time (None: it was the last) and the occurrences passed over."""

    wall: datetime
    planned: Scheduled
    following: datetime | None
    skipped: int


class Waiting(NamedTuple):
    """The next occurrence cannot be planned yet: its moment is beyond the horizon. Look
    again at `wake_at`, when it is inside."""

    wall: datetime
    wake_at: datetime
    skipped: int


class Exhausted(NamedTuple):
    skipped: int


Placement = Placed | Waiting | Exhausted
# Two jumps always settle a placement (see place_next); the bound only guards the loop.
_MAX_JUMPS = 8


def place_next(
    recurrence: Recurrence,
    wall: datetime | None,
    item: PlanItem,
    calling: CallingPolicy,
    ledger: CapacityLedger,
    *,
    now: datetime,
) -> Placement:
    """Plan the occurrence at local wall time `wall` (or a later one) through the planner:
    the first allowed, free moment from its nominal time (moved inside the windows when that
    time is outside them), but never at or past the next occurrence's moment and never
    beyond the horizon from now. An occurrence that cannot fit before the next one is passed
    over, counted in `skipped`."""
    horizon_end = now + timedelta(days=calling.horizon_days)
    skipped = 0
    for _ in range(_MAX_JUMPS):
        if wall is None:
            return Exhausted(skipped)
        start = max(recurrence.instant(wall), now)
        if start >= horizon_end:
            return Waiting(wall, _entering(start, calling), skipped)
        following = recurrence.after(wall)
        limit = None if following is None else recurrence.instant(following)
        planner = Planner(calling, now=start, ledger=ledger, strategy="earliest")
        (outcome,) = planner.plan([item])
        if isinstance(outcome, Scheduled) and (limit is None or outcome.at < limit):
            if outcome.at >= horizon_end:
                _release(ledger, outcome.at)
                return Waiting(wall, _entering(outcome.at, calling), skipped)
            return Placed(wall, outcome, following, skipped)
        if isinstance(outcome, Scheduled):
            _release(ledger, outcome.at)
        # No room before the next occurrence (or none at all in the planner's horizon). Every
        # occurrence up to the moment reached would land there or later: jump to the last of
        # them (it may fit before its own successor), passing over the others.
        reached = outcome.at if isinstance(outcome, Scheduled) else planner.horizon_end
        wall, passed = _jump(recurrence, wall, reached)
        skipped += passed
    return Waiting(wall, now + timedelta(days=1), skipped) if wall else Exhausted(skipped)


def _jump(recurrence: Recurrence, wall: datetime, reached: datetime) -> tuple[datetime | None, int]:
    last = recurrence.last_at_or_before(reached)
    if last is None or last <= wall:
        return recurrence.after(wall), 1
    return last, 1 + len(recurrence.between(wall, last))


def _entering(moment: datetime, calling: CallingPolicy) -> datetime:
    """When `moment` comes inside the planning horizon."""
    return moment - timedelta(days=calling.horizon_days) + timedelta(minutes=1)


def _release(ledger: CapacityLedger, at: datetime) -> None:
    """Give back a place the planner took for a placement that was not kept."""
    minute = int(at.timestamp()) // 60
    ledger.counts[minute] = max(0, ledger.counts.get(minute, 0) - 1)
