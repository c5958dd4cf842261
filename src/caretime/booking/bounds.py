"""Range bounds as callers give them: an instant, or a date meaning a whole local day.

A date-only `start` is the local midnight that begins that day, a date-only `end` the local
midnight that ends it (the end date is included), in the provider's zone: "slots on the
10th" are the slots of the provider's 10th, wherever the caller is.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from caretime.booking.localtime import MINUTES_PER_DAY, wall_to_utc

Bound = datetime | date


def bound_instant(bound: Bound, zone: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(bound, datetime):
        return bound
    return wall_to_utc(bound, MINUTES_PER_DAY if end else 0, zone)


def span_in(start: Bound, end: Bound, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return bound_instant(start, zone, end=False), bound_instant(end, zone, end=True)
