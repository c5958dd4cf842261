"""The overtime guard: a caregiver with `max_weekly_hours` is not offered (and cannot take)
a shift that would take their filled hours in its week past it. The week starts on the
tenant's `shifts.week_starts` at 00:00 in its default zone; a shift counts in the week its
start falls in, for its whole length."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.shifts.models import Caregiver, Shift
from caretime.tenancy.policy import WEEKDAYS, ShiftPolicy, Weekday

HOUR = timedelta(hours=1)


def week_of(moment: datetime, zone: str, week_starts: Weekday) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local week containing `moment` (7 local days: across a DST
    change the week is 167 or 169 hours long)."""
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz)
    first = local.date() - timedelta(days=(local.weekday() - WEEKDAYS.index(week_starts)) % 7)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(first + timedelta(days=7), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


async def over_weekly_hours(
    session: AsyncSession, shift: Shift, policy: ShiftPolicy, *, only: str | None = None
) -> set[str]:
    """Caregivers (with a limit) whom this shift would take past it, optionally just one."""
    week_start, week_end = week_of(shift.start_time, policy.default_tz, policy.week_starts)
    counted = and_(
        Shift.tenant_id == Caregiver.tenant_id,
        Shift.assigned_caregiver_id == Caregiver.id,
        Shift.status == "filled",
        Shift.id != shift.id,
        Shift.start_time >= week_start,
        Shift.start_time < week_end,
    )
    statement = (
        select(Caregiver.id, Caregiver.max_weekly_hours, Shift.start_time, Shift.end_time)
        .outerjoin(Shift, counted)
        .where(Caregiver.tenant_id == shift.tenant_id, Caregiver.max_weekly_hours.is_not(None))
    )
    if only is not None:
        statement = statement.where(Caregiver.id == only)
    limits: dict[str, float] = {}
    hours: dict[str, float] = defaultdict(float)
    for caregiver_id, limit, start, end in await session.execute(statement):
        limits[caregiver_id] = limit or 0.0  # never None: the query asks for a limit
        if start is not None:
            hours[caregiver_id] += (end - start) / HOUR
    this = (shift.end_time - shift.start_time) / HOUR
    return {cid for cid, limit in limits.items() if hours[cid] + this > limit}
