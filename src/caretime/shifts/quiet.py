"""Caregivers' quiet hours: in which zones to read them, and when an offer may go out.

Pure functions over policy.quiet: a round asks `offer_timing` once per distinct set of
zones (a roster has few), never per caregiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from caretime.policy.phones import UndialableNumber, parse_phone
from caretime.policy.quiet import QuietHours, awake_windows

# Looking further ahead than any shift is offered in advance would only cost time.
HORIZON = timedelta(days=3)


@dataclass(frozen=True)
class Timing:
    """When to contact: `at` (None: not before the shift starts); `note` says why, if quiet
    hours shaped it."""

    at: datetime | None
    note: str | None = None

    def held(self, now: datetime) -> bool:
        return self.at is not None and self.at > now


def given_or_phone_zones(given: str | None, phone: str) -> tuple[str, ...]:
    """The caregiver's zone as given, else every zone the phone's prefix spans."""
    if given:
        return (given,)
    try:
        return parse_phone(phone).zones
    except UndialableNumber:
        return ()


def caregiver_zones(given: str | None, phone: str, shift_tz: str) -> tuple[str, ...]:
    """Zones to read quiet hours in: given, else the phone's, else the shift's own."""
    return given_or_phone_zones(given, phone) or (shift_tz,)


def offer_timing(
    now: datetime,
    zones: tuple[str, ...],
    quiet: QuietHours,
    *,
    channel: str,
    shift_start: datetime,
    urgent_overrides: bool,
) -> Timing:
    """Now if outside quiet hours in every zone; else their end, if before the shift starts;
    else now for an SMS when the tenant lets urgency override them; else never."""
    resumes = _first_awake(now, zones, quiet)
    if resumes is None:
        return Timing(None, f"not offered: quiet hours leave no common moment in {zones}")
    if resumes == now:
        return Timing(now)
    local = resumes.astimezone(ZoneInfo(zones[0]))
    if resumes < shift_start:
        return Timing(resumes, f"held until {local:%H:%M} local: quiet hours")
    if channel == "sms" and urgent_overrides:
        return Timing(now, "sent in quiet hours: the shift starts before they end (urgent)")
    return Timing(None, f"not offered: quiet hours until {local:%H:%M} local, after the start")


def _first_awake(now: datetime, zones: tuple[str, ...], quiet: QuietHours) -> datetime | None:
    """The first instant outside quiet hours in every zone (zones of one uncertain phone may
    share none when quiet hours are long)."""
    return awake_windows(zones, quiet, start=now, end=now + HORIZON).first_at_or_after(now)
