"""The injectable clock: every "now" in caretime comes from here, so tests can freeze time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to; listeners hear every move (workers wake on it)."""

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self._now + delta)

    def set(self, at: datetime) -> datetime:
        self._now = ensure_utc(at)
        for listener in list(self._listeners):
            listener()
        return self._now

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)


def ensure_utc(value: datetime) -> datetime:
    """Refuse naive datetimes inside the system; convert aware ones to UTC."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: instants inside caretime must be timezone-aware")
    return value.astimezone(UTC)


def isoformat_z(value: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, the way every response spells instants."""
    text = ensure_utc(value).isoformat()
    return text.replace("+00:00", "Z")


def local_moment(value: datetime, zone: tzinfo) -> str:
    """'Tue 2026-03-03 09:00 EST (America/New_York)': a moment as a person in `zone` reads it,
    to the minute (never with seconds or microseconds)."""
    local = value.astimezone(zone)
    name = str(zone)
    abbreviation = local.tzname() or name
    suffix = abbreviation if abbreviation == name else f"{abbreviation} ({name})"
    return f"{local:%a %Y-%m-%d %H:%M} {suffix}"
