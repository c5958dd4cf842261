"""Taking a provider's time: the database's no-overlap guarantee, and the per-day limit.

The guarantee is the database's (see docs/booking.md): an exclusion constraint on PostgreSQL,
triggers on SQLite. A write that would overlap fails inside its SAVEPOINT, which is rolled
back alone, so the caller's transaction (and, for a move, the visit's old time) is untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.errors import DayFull
from caretime.booking.localtime import utc_to_wall, wall_to_utc
from caretime.booking.models import Appointment, Provider
from caretime.booking.repository import active_at
from caretime.db import serialise_on

DEADLOCK = "40P01"
# Under heavy contention the retry can meet a third overlapping insert: a few tries, each
# after another transaction went first, settle it.
DEADLOCK_TRIES = 4


async def claim_time(
    session: AsyncSession, provider_key: str, write: Callable[[], Awaitable[None]]
) -> bool:
    """Run `write` in a SAVEPOINT; False if it would overlap an active appointment.

    Two PostgreSQL transactions inserting overlapping spans at once can each wait for the
    other (an exclusion constraint checks after inserting); the one chosen as deadlock victim
    tries again (a few times), by which time the other has gone first.
    """
    # One writer of a provider's time at once, until commit (a short transaction): many
    # overlapping inserts otherwise wait for each other in cycles, and under heavy
    # contention a victim's retries met new cycles. The constraint stays the guarantee.
    await serialise_on(session, f"time:{provider_key}")
    for attempt in range(1, DEADLOCK_TRIES + 1):
        try:
            async with session.begin_nested():
                await write()
                await session.flush()
            return True
        except IntegrityError:
            return False
        except DBAPIError as exc:
            if attempt == DEADLOCK_TRIES or getattr(exc.orig, "sqlstate", None) != DEADLOCK:
                raise
    return False


async def check_day_limit(
    session: AsyncSession,
    provider: Provider,
    slot_start: datetime,
    *,
    now: datetime,
    moving: str | None = None,
) -> None:
    """409 day-full if the provider's local day of `slot_start` already holds `max_per_day`
    active visits (not counting `moving`, a visit being moved within it)."""
    if provider.max_per_day is None:
        return
    zone = ZoneInfo(provider.tz)
    day = utc_to_wall(slot_start, zone).date()
    # Bookings of this provider-day, one at a time until commit (a short transaction).
    await serialise_on(session, f"{provider.tenant_id}:{provider.id}:{day}")
    start, end = wall_to_utc(day, 0, zone), wall_to_utc(day + timedelta(days=1), 0, zone)
    statement = select(func.count()).where(
        Appointment.tenant_id == provider.tenant_id,
        Appointment.provider_id == provider.id,
        Appointment.slot_start >= start,
        Appointment.slot_start < end,
        Appointment.id != (moving or ""),
        active_at(now),
    )
    if (await session.scalar(statement) or 0) >= provider.max_per_day:
        raise DayFull(
            f"provider {provider.id!r} takes at most {provider.max_per_day} visits on {day}",
            date=day.isoformat(),
        )
