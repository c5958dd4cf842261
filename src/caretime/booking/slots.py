"""Free slots: computed from availability minus active appointments minus the minimum notice,
never stored. Ordered by (start, provider id) across providers, keyset-paginated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.booking.availability import effective_windows
from caretime.booking.errors import ProviderNotFound, RangeTooLong
from caretime.booking.grid import Slot, free_slots
from caretime.booking.localtime import utc_to_wall
from caretime.booking.repository import AppointmentRepository, ProviderRepository, RuleRepository
from caretime.errors import InvalidInput
from caretime.tenancy.policy import BookingPolicy

MAX_RANGE = timedelta(days=31)


async def find_slots(
    session: AsyncSession,
    tenant_id: str,
    policy: BookingPolicy,
    *,
    provider_ids: Sequence[str] | None,
    start: datetime,
    end: datetime,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    check_range(start, end)
    providers = await ProviderRepository(session, tenant_id).many(provider_ids)
    if provider_ids is not None and len(providers) < len(set(provider_ids)):
        missing = sorted(set(provider_ids) - {p.id for p in providers})
        raise ProviderNotFound(f"no provider {missing[0]!r}", missing=missing)
    # Rules are stored per local date; one day either side covers every UTC offset.
    first, last = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    rules = await RuleRepository(session, tenant_id).rules(provider_ids, first, last)
    busy = await AppointmentRepository(session, tenant_id).busy(provider_ids, start, end, now)
    earliest = max(start, now + policy.min_notice)
    length = timedelta(minutes=policy.slot_minutes)
    slots: list[Slot] = []
    for provider in providers:
        zone = ZoneInfo(provider.tz)
        windows = effective_windows(
            rules.get(provider.id, []),
            zone,
            utc_to_wall(start, zone).date(),
            utc_to_wall(end, zone).date(),
        )
        slots += free_slots(
            provider.id, windows, busy.get(provider.id, []), length=length, start=earliest, end=end
        )
    slots.sort()
    return _page(slots, limit, after)


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInput("end must be after start")
    if end - start > MAX_RANGE:
        raise RangeTooLong(f"a slot search covers at most {MAX_RANGE.days} days")


def _page(
    slots: list[Slot], limit: int, after: tuple[datetime, str] | None
) -> tuple[list[Slot], tuple[datetime, str] | None]:
    if after is not None:
        slots = [slot for slot in slots if (slot.start, slot.provider_id) > after]
    if len(slots) <= limit:
        return slots, None
    last = slots[limit - 1]
    return slots[:limit], (last.start, last.provider_id)
