"""Per-contact frequency caps: at most so many attempts per local day and per local week."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from caretime.policy.windows import ContactWindows, local_to_utc


@dataclass(frozen=True)
class ContactCaps:
    per_day: int
    per_week: int


def next_moment_under_caps(
    windows: ContactWindows,
    previous: Sequence[datetime],
    caps: ContactCaps,
    *,
    zone: str,
    after: datetime,
) -> datetime | None:
    """The first allowed moment at or after `after` at which one more attempt stays within
    the caps, counting `previous` attempts by the contact's local day and ISO week."""
    tz = ZoneInfo(zone)
    candidate = windows.first_at_or_after(after)
    while candidate is not None:
        local = candidate.astimezone(tz)
        days = [p.astimezone(tz).date() for p in previous]
        week = local.isocalendar()[:2]
        if sum(1 for d in days if d.isocalendar()[:2] == week) >= caps.per_week:
            next_day = local.date() + timedelta(days=7 - local.weekday())
        elif sum(1 for d in days if d == local.date()) >= caps.per_day:
            next_day = local.date() + timedelta(days=1)
        else:
            return candidate
        candidate = windows.first_at_or_after(local_to_utc(next_day, time(0), tz, bound="start"))
    return None
