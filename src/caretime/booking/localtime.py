"""A provider's wall-clock times as UTC instants, including on daylight-saving change days.

Rules (documented in docs/booking.md): a window is the real time between its two ends.
An ambiguous wall time (the repeated hour when clocks go back) is read as its first
occurrence. A nonexistent wall time (skipped when clocks go forward) is read as the instant
the clocks jumped, so the skipped stretch contributes no time at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60


def wall_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """`minute` after local midnight of `day` (1440 = the next midnight) as a UTC instant."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _jump_instant(wall, zone)


def utc_to_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The provider's local wall-clock reading (naive) at a UTC instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _jump_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """For a wall time inside a spring-forward gap: the instant the clocks jumped over it."""
    before = wall.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
    after = wall.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    low = (wall - after).replace(tzinfo=UTC)
    high = (wall - before).replace(tzinfo=UTC)
    # The transition lies in (low, high]; offsets change on whole minutes, so bisect minutes.
    while high - low > timedelta(minutes=1):
        middle = low + timedelta(minutes=(high - low) // timedelta(minutes=1) // 2)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high
